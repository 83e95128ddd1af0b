#!/usr/bin/env bash
# Builds (or finds in the cache) the real-app test images of tests/tests/real_apps.rs:
# Debian bookworm images made the way the official images are made, from Debian packages
# only: `debootstrap --variant=minbase` once, then per app a copy of that root with
# `apt-get install --no-install-recommends` run in a chroot. Nothing is pulled from a
# container registry.
#
#   scripts/build-real-app-images.sh [APP...]     (default: every app)
#   scripts/build-real-app-images.sh --list
#
# Apps: bash python python-http ld-library-path nginx redis node java.
# For each app it prints `APP DIR` on stdout; DIR holds `layer.tar.gz` (the one gzip
# layer: the whole root filesystem), `diff_id` (sha256 of the uncompressed tar) and
# `config.json` (the image config's `config` object: Cmd, Env, User, WorkingDir, ...).
# tests/src/real_apps.rs turns that into an OCI image.
#
# Cache: ${KILN_TEST_IMAGE_CACHE:-$HOME/.cache/kiln/test-images}, outside the clone. Every
# entry is named by a hash of its recipe (suite, packages, setup steps, this script's
# RECIPE_VERSION), so a changed recipe builds anew and an unchanged one is reused. One
# lock (flock on $CACHE/.lock) makes parallel callers build each thing once. Old entries
# are never removed automatically: `rm -rf` the cache dir to reclaim the space.
#
# The Debian mirror comes from this machine's apt configuration (the first enabled `deb`
# entry for the suite with component main in /etc/apt/sources.list.d/*.sources or
# /etc/apt/sources.list), or from KILN_DEBIAN_MIRROR. Needs root, debootstrap, unshare,
# chroot, tar, gzip, sha256sum; `javac` (optional) for the java app's class.
set -euo pipefail

RECIPE_VERSION=1
SUITE=bookworm
ALL_APPS=(bash python python-http ld-library-path nginx redis node java)
OS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf 'build-real-app-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${ALL_APPS[@]}"
  exit 0
fi
apps=("$@")
[ ${#apps[@]} -gt 0 ] || apps=("${ALL_APPS[@]}")

CACHE=${KILN_TEST_IMAGE_CACHE:-$HOME/.cache/kiln/test-images}
mkdir -p "$CACHE/rootfs" "$CACHE/images"
exec 9>"$CACHE/.lock"
flock 9

# --- the Debian mirror, from the machine's apt configuration ---------------------------
debian_mirror() {
  if [ -n "${KILN_DEBIAN_MIRROR:-}" ]; then
    echo "$KILN_DEBIAN_MIRROR"
    return
  fi
  local f m
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk -v suite="$SUITE" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") &&
            comps ~ /(^| )main( |$)/ && uris != "" && enabled != "no") {
          split(uris, u, " "); print u[1]; done = 1; exit
        }
        types = suites = comps = uris = enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { key = tolower($1); $1 = ""; sub(/^ +/, "") }
      key == "types:" { types = $0 } key == "suites:" { suites = $0 }
      key == "components:" { comps = $0 } key == "uris:" { uris = $0 }
      key == "enabled:" { enabled = tolower($0) }
      END { if (!done) flush() }' "$f")
    if [ -n "$m" ]; then echo "$m"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    m=$(awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit } }
      }' "$f")
    if [ -n "$m" ]; then echo "$m"; return; fi
  done
  return 1
}

hash_of() { sha256sum | cut -c1-16; }

# Runs a command in the chroot ROOT with /proc mounted (private mount namespace, so the
# mount goes away with the command) and no service started by package scripts.
in_root() {
  local root=$1
  shift
  unshare --mount --fork -- bash -c 'mount -t proc proc "$1/proc" && shift && exec chroot "$@"' \
    _ "$root" "$root" env -i PATH="$OS_PATH" HOME=/root DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"
}

apt_install() {
  local root=$1
  shift
  in_root "$root" apt-get install -y -qq --no-install-recommends "$@" >&2
}

# --- the base: debootstrap minbase ------------------------------------------------------
BASE_RECIPE="v$RECIPE_VERSION debootstrap --variant=minbase $SUITE; apt-get update; policy-rc.d 101"
BASE_HASH=$(printf '%s' "$BASE_RECIPE" | hash_of)
BASE_DIR="$CACHE/rootfs/base-$BASE_HASH"

build_base() {
  [ -f "$BASE_DIR/.done" ] && return
  command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/install-deps.sh)"
  local mirror
  mirror=$(debian_mirror) || die "no '$SUITE main' deb entry in /etc/apt/sources.list{,.d/*}; set KILN_DEBIAN_MIRROR"
  log "debootstrap --variant=minbase $SUITE from $mirror (once; about a minute)"
  local t0=$SECONDS tmp="$BASE_DIR.tmp"
  rm -rf "$tmp" "$BASE_DIR"
  debootstrap --variant=minbase "$SUITE" "$tmp" "$mirror" >&2
  printf '#!/bin/sh\n# kiln test images: no services start while packages install\nexit 101\n' \
    >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"
  in_root "$tmp" apt-get update -qq >&2
  # debootstrap's .debs (~100 MB) are not needed again; the lists stay for the app builds.
  in_root "$tmp" apt-get clean
  touch "$tmp/.done"
  mv "$tmp" "$BASE_DIR"
  log "base ready in $((SECONDS - t0)) s: $(du -sm "$BASE_DIR" | cut -f1) MB"
}

# --- per-rootfs setup (each function's text is part of its recipe hash) -----------------
setup_bash() { :; }

setup_python() {
  apt_install "$1" python3
  in_root "$1" useradd --uid 1000 --create-home --shell /bin/bash app
  mkdir -p "$1/srv"
  printf 'hello from the python http server\n' >"$1/srv/hello.txt"
}

setup_nginx() {
  local r=$1
  apt_install "$r" nginx
  # As the official nginx image: user nginx (101), nginx.conf and conf.d/default.conf as
  # there, logs linked to the container's stdout/stderr.
  in_root "$r" groupadd --system --gid 101 nginx
  in_root "$r" useradd --system --uid 101 --gid nginx --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin nginx
  rm -f "$r/etc/nginx/sites-enabled/default"
  cat >"$r/etc/nginx/nginx.conf" <<'EOF'
user  nginx;
worker_processes  auto;

error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;
    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
EOF
  mkdir -p "$r/etc/nginx/conf.d" "$r/usr/share/nginx/html"
  cat >"$r/etc/nginx/conf.d/default.conf" <<'EOF'
server {
    listen       80;
    listen  [::]:80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
EOF
  printf '<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n' \
    >"$r/usr/share/nginx/html/index.html"
  ln -sf /dev/stdout "$r/var/log/nginx/access.log"
  ln -sf /dev/stderr "$r/var/log/nginx/error.log"
}

setup_redis() {
  apt_install "$1" redis-server redis-tools
  mkdir -p "$1/data"
  in_root "$1" chown redis:redis /data
}

NODE_SERVER='const http = require("http");
http.createServer((req, res) => res.end("hello from node " + process.version + "\n"))
  .listen(3000, () => console.log("node listening on 3000"));
'
setup_node() {
  apt_install "$1" nodejs
  mkdir -p "$1/app"
  printf '%s' "$NODE_SERVER" >"$1/app/server.js"
}

JAVA_SOURCE='public class Hello {
    public static void main(String[] args) {
        System.out.println("hello from java " + System.getProperty("java.version"));
    }
}
'
have_javac() { command -v javac >/dev/null && javac --release 17 -version >/dev/null 2>&1; }
setup_java() {
  apt_install "$1" openjdk-17-jre-headless
  if have_javac; then
    local src
    src=$(mktemp -d)
    printf '%s' "$JAVA_SOURCE" >"$src/Hello.java"
    javac --release 17 -d "$src" "$src/Hello.java"
    mkdir -p "$1/app"
    cp "$src/Hello.class" "$1/app/Hello.class"
    rm -rf "$src"
  fi
}

rootfs_of() {
  case $1 in
    bash) echo bash ;;
    python | python-http | ld-library-path) echo python ;;
    nginx | redis | node | java) echo "$1" ;;
    *) die "unknown app '$1' (apps: ${ALL_APPS[*]})" ;;
  esac
}

# The image config's `config` object of each app.
config_of() {
  local env="\"PATH=$OS_PATH\", \"LANG=C.UTF-8\""
  case $1 in
    bash)
      echo "{\"Env\": [$env], \"Cmd\": [\"bash\", \"-c\", \"echo hello from bash \$BASH_VERSION\"]}" ;;
    python)
      echo "{\"Env\": [$env], \"Cmd\": [\"python3\", \"-c\", \"import sys; print('hello from python', sys.version.split()[0])\"]}" ;;
    python-http)
      echo "{\"Env\": [$env], \"User\": \"1000\", \"WorkingDir\": \"/srv\", \"ExposedPorts\": {\"8000/tcp\": {}}, \"Cmd\": [\"python3\", \"-m\", \"http.server\", \"8000\"]}" ;;
    ld-library-path)
      echo "{\"Env\": [$env, \"LD_LIBRARY_PATH=/usr/local/lib\"], \"Cmd\": [\"python3\", \"-c\", \"import os; print('hello from python with LD_LIBRARY_PATH=' + os.environ['LD_LIBRARY_PATH'])\"]}" ;;
    nginx)
      echo "{\"Env\": [$env], \"ExposedPorts\": {\"80/tcp\": {}}, \"StopSignal\": \"SIGQUIT\", \"Cmd\": [\"nginx\", \"-g\", \"daemon off;\"]}" ;;
    redis)
      echo "{\"Env\": [$env], \"User\": \"redis\", \"WorkingDir\": \"/data\", \"Volumes\": {\"/data\": {}}, \"ExposedPorts\": {\"6379/tcp\": {}}, \"Cmd\": [\"redis-server\"]}" ;;
    node)
      echo "{\"Env\": [$env], \"ExposedPorts\": {\"3000/tcp\": {}}, \"Cmd\": [\"node\", \"/app/server.js\"]}" ;;
    java)
      if have_javac; then
        echo "{\"Env\": [$env], \"Cmd\": [\"java\", \"-cp\", \"/app\", \"Hello\"]}"
      else
        echo "{\"Env\": [$env], \"Cmd\": [\"java\", \"-version\"]}"
      fi ;;
  esac
}

rootfs_recipe() {
  local name=$1
  printf 'base %s\n' "$BASE_HASH"
  declare -f "setup_$name" in_root apt_install
  case $name in
    node) printf '%s' "$NODE_SERVER" ;;
    java) have_javac && printf '%s' "$JAVA_SOURCE" ;;
  esac
  return 0
}

# Builds the gzip layer of rootfs NAME; prints its directory.
build_rootfs() {
  local name=$1 hash dir
  hash=$(rootfs_recipe "$name" | hash_of)
  dir="$CACHE/rootfs/$name-$hash"
  if [ ! -f "$dir/.done" ]; then
    build_base
    local t0=$SECONDS work="$CACHE/rootfs/work-$name-$hash"
    log "building rootfs '$name' (recipe $hash)"
    rm -rf "$work" "$dir"
    mkdir -p "$work" "$dir.tmp"
    cp -a "$BASE_DIR/." "$work/root"
    rm -f "$work/root/.done"
    "setup_$name" "$work/root"
    in_root "$work/root" apt-get clean
    rm -f "$work/root/usr/sbin/policy-rc.d"
    # The layer: the whole root as an image has it (no device nodes, no apt lists or
    # caches, no host resolv.conf), numeric owners, sorted names.
    (cd "$work/root" && tar --numeric-owner --sort=name --xattrs --xattrs-include='security.capability' \
      --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./tmp/*' \
      --exclude='./var/lib/apt/lists/*' --exclude='./var/cache/apt/*' --exclude='./etc/resolv.conf' \
      -cf - .) >"$work/layer.tar"
    sha256sum "$work/layer.tar" | awk '{print "sha256:" $1}' >"$dir.tmp/diff_id"
    gzip -n -6 -c "$work/layer.tar" >"$dir.tmp/layer.tar.gz"
    touch "$dir.tmp/.done"
    rm -rf "$work"
    mv "$dir.tmp" "$dir"
    log "rootfs '$name' ready in $((SECONDS - t0)) s: $(du -sm "$dir/layer.tar.gz" | cut -f1) MB compressed"
  fi
  echo "$dir"
}

for app in "${apps[@]}"; do
  name=$(rootfs_of "$app")
  rdir=$(build_rootfs "$name")
  config=$(config_of "$app")
  ihash=$(printf '%s\n%s' "$rdir" "$config" | hash_of)
  idir="$CACHE/images/$app-$ihash"
  if [ ! -f "$idir/.done" ]; then
    rm -rf "$idir"
    mkdir -p "$idir"
    ln -s "$rdir/layer.tar.gz" "$idir/layer.tar.gz"
    cp "$rdir/diff_id" "$idir/diff_id"
    printf '%s\n' "$config" >"$idir/config.json"
    touch "$idir/.done"
  fi
  echo "$app $idir"
done
