//! Issue 19, item 9: the WeChat response body was read whole, however
//! large. A server (or a man in the middle) answering 200 with 4 MiB is cut
//! off at 1 MiB and the call fails as an undecodable answer.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wxpush_wechat::{ClientSettings, MessageApi, WechatClient, WechatError};

#[tokio::test]
async fn an_endless_answer_is_cut_off() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 4096];
        let _ = socket.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
        for _ in 0..64 {
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                return; // the client hung up, as it should
            }
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
    });
    let client = WechatClient::new(&ClientSettings {
        base_url: format!("http://{addr}"),
        ..Default::default()
    })
    .unwrap();
    let err = client
        .send_message(MessageApi::Template, "token", "{}", None)
        .await
        .unwrap_err();
    match err {
        WechatError::Decode(why) => assert!(why.contains("larger than"), "{why}"),
        other => panic!("expected a refused answer, got {other:?}"),
    }
    server.abort();
}
