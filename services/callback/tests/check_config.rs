//! `wxpush-callback --check-config`: the apps' tokens and keys are read and
//! checked without serving; a missing or malformed one is refused naming
//! the app and the source, never a value.

use wxpush_testkit::CheckConfig;

const CALLBACK: CheckConfig = CheckConfig {
    binary: env!("CARGO_BIN_EXE_wxpush-callback"),
    prefix: "WXPUSH_CALLBACK",
};

#[test]
fn tokens_and_keys_come_from_files_or_variables_and_are_checked() {
    CALLBACK.assert_standard();
    let dir = std::env::temp_dir().join(format!("wxpush-callback-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "tok-s3cr3t\n").unwrap();
    let yaml = |aes: &str| {
        format!(
            "apps:\n  - app_id: wx_cb\n    token_file: {}\n    aes_key_env: WXPUSH_TEST_CB_AES_{aes}\n",
            token.display()
        )
    };
    let good = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
    let run = |aes_var: &str, value: &str| {
        let mut cmd = std::process::Command::new(CALLBACK.binary);
        cmd.arg("--check-config")
            .arg("--config")
            .arg(dir.join(format!("{aes_var}.yaml")))
            .env("WXPUSH_CALLBACK__AUTH__MODE", "off")
            .env(format!("WXPUSH_TEST_CB_AES_{aes_var}"), value);
        std::fs::write(dir.join(format!("{aes_var}.yaml")), yaml(aes_var)).unwrap();
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = run("GOOD", good);
    assert!(ok, "{out}");
    let (ok, out) = run("SHORT", "tooshort");
    assert!(!ok && out.contains("apps[wx_cb].aes_key"), "{out}");
    assert!(
        !out.contains("tooshort") && !out.contains("tok-s3cr3t"),
        "{out}"
    );
    let (ok, out) = CALLBACK.run(Some("apps:\n  - app_id: wx_cb\n    token: inline\n"), &[]);
    assert!(!ok && out.contains("wxpush dev"), "{out}");
    let (ok, out) = CALLBACK.run(Some("apps:\n  - app_id: wx_cb\n"), &[]);
    assert!(!ok && out.contains("token_env"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
