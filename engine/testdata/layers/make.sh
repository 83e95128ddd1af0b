#!/usr/bin/env bash
# Regenerates sample-gnu.tar.gz (a small real layer written by GNU tar, not by kiln) and
# sample-gnu.expected (facts about it computed by sha256sum, gzip and GNU tar, so tests
# do not check kiln against itself). Run as root (chown, mknod). The committed blob is
# what tests use; regenerating changes its digest.
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
r=$tmp/root
mkdir -p "$r"/{etc,bin,usr/bin,usr/share/doc/kiln,var/empty,dev,opt,home/app}
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n' >"$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\n' >"$r/etc/group"
cp /usr/bin/true "$r/usr/bin/true"
cp /usr/share/common-licenses/GPL-3 "$r/usr/share/doc/kiln/GPL-3"
seq 1 40000 >"$r/usr/share/doc/kiln/numbers"
: >"$r/usr/share/doc/kiln/empty"
ln "$r/usr/bin/true" "$r/usr/bin/hardlink-true"
ln -s ../usr/bin/true "$r/bin/true"
ln -s /usr/bin/true "$r/bin/abs-true"
long=$r/usr/share/doc/kiln/$(printf 'd%.0s' {1..120})
mkdir -p "$long"
printf 'long name\n' >"$long/$(printf 'f%.0s' {1..110})"
mkfifo "$r/var/fifo"
mknod "$r/dev/null" c 1 3
printf 'secret\n' >"$r/home/app/note"
chown -R 1000:1000 "$r/home/app"
chmod 0700 "$r/home/app"
chmod 4755 "$r/usr/bin/true"
chmod 1777 "$r/var/empty"
: >"$r/etc/.wh.motd"
: >"$r/opt/.wh..wh..opq"
find "$r" -exec touch -h -d @1700000000 {} +
blob=$out/sample-gnu.tar.gz
tar --format=gnu --sort=name --numeric-owner -C "$r" -cf - . | gzip -9n >"$blob"
{
  echo "digest sha256:$(sha256sum <"$blob" | cut -d' ' -f1)"
  echo "diff_id sha256:$(gzip -dc "$blob" | sha256sum | cut -d' ' -f1)"
  echo "size $(stat -c %s "$blob")"
  echo "uncompressed_size $(gzip -dc "$blob" | wc -c)"
  echo "tar_entries $(tar -tzf "$blob" | wc -l)"
  (cd "$r" && find . -type f -printf '%P\n' | sort | while read -r f; do
    echo "file /$f $(stat -c %s "$f") $(sha256sum <"$f" | cut -d' ' -f1) $(stat -c %a "$f") $(stat -c %u "$f") $(stat -c %g "$f")"
  done)
} >"$out/sample-gnu.expected"
