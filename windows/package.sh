#!/usr/bin/env bash
# The Windows release zip: lockstep.exe stripped of debug info, a sample lockstep.toml and
# README-Windows.md, as target/lockstep-VERSION-windows-x86_64.zip; then its contents checked.
#
#   bash windows/package.sh [PROFILE]    (default release; CI packs its dev build to check the
#                                         packing without a second build of every crate)
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-pc-windows-gnu
profile="${1:-release}"
cargo build --locked --target "$target" -p lockstep --bin lockstep --profile "$profile"
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
stripped=$(mktemp -d)
trap 'rm -rf "$stripped"' EXIT
out_dir="${CARGO_TARGET_DIR:-target}"
x86_64-w64-mingw32-strip -o "$stripped/lockstep.exe" "$out_dir/$target/$dir/lockstep.exe"
if x86_64-w64-mingw32-objdump -h "$stripped/lockstep.exe" | grep -q '\.debug_'; then
  echo "lockstep.exe still has debug sections"; exit 1
fi
zip="$out_dir/lockstep-$version-windows-x86_64.zip"
python3 - "$stripped/lockstep.exe" "$zip" <<'PY'
import sys, zipfile
exe, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(exe, "lockstep/lockstep.exe")
    z.write("windows/lockstep.toml", "lockstep/lockstep.toml")
    z.write("windows/README-Windows.md", "lockstep/README-Windows.md")
PY
python3 - "$zip" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = sorted(z.namelist())
assert names == ["lockstep/README-Windows.md", "lockstep/lockstep.exe", "lockstep/lockstep.toml"], names
exe = z.read("lockstep/lockstep.exe")
assert exe[:2] == b"MZ", "not a Windows executable"
print(f"{sys.argv[1]}: {', '.join(names)}; lockstep.exe {len(exe) / 1e6:.1f} MB")
PY
