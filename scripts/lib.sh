# Shared by kiln's scripts: `source "$(dirname "$0")/lib.sh"`. Defines functions only.

# build_static NAME CARGO_ARGS...: builds a static binary (no libc needed at run time) with
# `cargo build --release CARGO_ARGS...`, preferring the musl target and falling back to glibc
# with crt-static (also static-pie; fine for binaries that need no NSS or dlopen), into
# ${KILN_LAUNCHER_TARGET_DIR:-target/launcher-static} without debug info. Run from the
# repository root. Prints the binary's absolute path on stdout; fails when `file` says the
# binary NAME is not statically linked. C code in dependencies (ring, for kiln-init's https)
# needs a C compiler for the musl target: when neither `x86_64-linux-musl-gcc` nor `musl-gcc`
# is on PATH (and CC_x86_64_unknown_linux_musl is unset), the host's gcc is used, which
# gives a static-pie binary (ring only needs a C compiler and assembler, not musl headers).
build_static() {
  local name=$1
  shift
  local target_dir=${KILN_LAUNCHER_TARGET_DIR:-target/launcher-static}
  local musl=x86_64-unknown-linux-musl target
  export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols
  if rustup target list --installed 2>/dev/null | grep -qx "$musl" \
     || rustup target add "$musl" >&2; then
    target=$musl
    if [ -z "${CC_x86_64_unknown_linux_musl:-}" ] \
       && ! command -v x86_64-linux-musl-gcc >/dev/null && ! command -v musl-gcc >/dev/null; then
      export CC_x86_64_unknown_linux_musl=gcc
    fi
    cargo build --release --quiet "$@" --target "$target" --target-dir "$target_dir" >&2
  else
    target=x86_64-unknown-linux-gnu
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
      cargo build --release --quiet "$@" --target "$target" --target-dir "$target_dir" >&2
  fi
  local bin="$target_dir/$target/release/$name"
  if command -v file >/dev/null && ! file "$bin" | grep -q 'static'; then
    echo "$(basename "$0"): $bin is not statically linked" >&2
    return 1
  fi
  case $bin in
    /*) echo "$bin" ;;
    *) echo "$(pwd)/$bin" ;;
  esac
}
