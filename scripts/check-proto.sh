#!/usr/bin/env bash
# The wire API against its ecosystem's rules, with the real `buf` (the npm
# package @bufbuild/buf, pinned, installed under target/tools/buf):
#   - `buf lint` (STANDARD, buf v2's DEFAULT: every RPC has its own
#     <Method>Request / <Method>Response, enum zero values, naming...);
#   - `buf breaking` against the last release: the newest `v*` git tag when the
#     clone has one, else the newest image committed in api/releases/ (made at
#     release time with `buf build -o api/releases/wxpush-vX.Y.Z.binpb`).
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION=1.75.0
tools="target/tools/buf"
buf="$tools/node_modules/.bin/buf"
if ! [ -x "$buf" ] || [ "$("$buf" --version 2>/dev/null)" != "$BUF_VERSION" ]; then
  echo "installing buf $BUF_VERSION (npm @bufbuild/buf)"
  mkdir -p "$tools"
  npm install --silent --no-audit --no-fund --prefix "$tools" "@bufbuild/buf@$BUF_VERSION" >/dev/null
fi

echo "buf lint"
"$buf" lint

tag=$(git tag --list 'v*' --sort=-version:refname 2>/dev/null | head -n 1 || true)
if [ -n "$tag" ]; then
  against=".git#tag=$tag,subdir=proto"
else
  against=$(ls api/releases/wxpush-v*.binpb | sort -V | tail -n 1)
fi
echo "buf breaking --against $against"
"$buf" breaking --against "$against"
echo "check-proto: lint and breaking passed"
