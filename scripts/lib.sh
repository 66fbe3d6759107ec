# Shared by scripts/run.sh and scripts/test.sh: idempotent installs and the
# cockpit build. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
TRUNK_VERSION=0.21.14
# wasm-split-cli: splits the cockpit's lazily loaded pages off its wasm.
WASM_SPLIT_VERSION=0.2.4

step() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "installing system packages needs root: run as root or install sudo"; fi
}

# need_apt PKG...: installs the Debian packages that are not installed yet.
need_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "Installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The wasm-bindgen version locked in Cargo.lock (the CLI must match it).
locked_wasm_bindgen() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

need_web_tools() {
  # Debian's Rust 1.96 with std sources builds wasm (see ../shared/TOOLCHAIN.md).
  need_apt rustc-web cargo-web rust-web-src lld-19
  # wasm-opt, the pre-compression, and the font with its subsetter.
  need_apt binaryen brotli fonts-inter python3-fonttools python3-brotli
  command -v cargo >/dev/null || die "cargo is not on PATH: install Rust with rustup"
  if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
    step "Installing trunk $TRUNK_VERSION (takes several minutes once)"
    cargo install trunk --version "$TRUNK_VERSION" --locked --quiet
  fi
  local want; want="$(locked_wasm_bindgen)"
  [ -n "$want" ] || die "Cargo.lock names no wasm-bindgen version"
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $want" ]; then
    step "Installing wasm-bindgen-cli $want (takes several minutes once)"
    # No --locked: the registry here lacks some patch releases its lockfile names.
    cargo install wasm-bindgen-cli --version "$want" --quiet
  fi
  if ! cargo install --list 2>/dev/null | grep -qx "wasm_split_cli_support v$WASM_SPLIT_VERSION:" ||
     ! command -v wasm-split-cli >/dev/null; then
    step "Installing wasm-split-cli $WASM_SPLIT_VERSION (takes a minute once)"
    cargo install wasm_split_cli_support --version "$WASM_SPLIT_VERSION" --features build-binary --locked --quiet
  fi
}

# The cockpit's font: Debian's Inter, subset to the characters the cockpit
# writes (Latin, punctuation, arrows, the status glyphs) as WOFF2, about 18 KB
# a weight. Written to target/web-fonts/ (index.html links it) with the
# content's hash in each name, so browsers may cache them for good.
build_web_fonts() {
  local out="$ROOT/target/web-fonts" weight file name hash
  local src=/usr/share/fonts/opentype/inter
  local unicodes="U+0020-007E,U+00A0-00FF,U+2010-2027,U+2030-203A,U+2190-2199,U+2212,U+25B2-25BC,U+2713,U+2715"
  rm -rf "$out" && mkdir -p "$out/fonts"
  : > "$out/inter.css"
  for weight in 400:Regular 500:Medium 600:SemiBold 700:Bold; do
    file="$out/fonts/inter-${weight%%:*}.woff2"
    /usr/bin/python3 -m fontTools.subset "$src/Inter-${weight#*:}.otf" --unicodes="$unicodes" \
      --layout-features=kern,liga,calt,tnum --flavor=woff2 --output-file="$file" ||
      die "could not subset $src/Inter-${weight#*:}.otf (Debian packages fonts-inter, python3-fonttools, python3-brotli)"
    hash="$(sha256sum "$file" | cut -c1-16)"
    name="inter-${weight%%:*}-$hash.woff2"
    mv "$file" "$out/fonts/$name"
    printf '@font-face { font-family: Inter; font-style: normal; font-weight: %s; font-display: swap; src: url("/fonts/%s") format("woff2"); }\n' \
      "${weight%%:*}" "$name" >> "$out/inter.css"
  done
}

# Pre-compressed copies of the cockpit's files (brotli and gzip, at their
# best levels), which `sendense serve` sends to browsers that accept them.
compress_web() {
  local file
  find "$ROOT/dist" -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' -o -name '*.html' -o -name '*.svg' -o -name '*.json' \) -print0 |
    while IFS= read -r -d '' file; do
      brotli --force --best --output="$file.br" "$file" && gzip --force --best --keep "$file" ||
        die "could not compress $file"
    done
}

# The cockpit's wasm, split: cargo links it with its relocations
# (`--emit-relocs`), wasm-split-cli moves the code that only a lazy page
# reaches (`#[lazy]` in frontend/src/app.rs) into wasm files of its own
# (split_<page>.wasm and the chunk_<n>.wasm they share) with a loader
# (__wasm_split.js), wasm-bindgen makes the main file's JS (keeping the
# exports the split files use), wasm-opt shrinks each file. Every file gets
# the same hash of all of them in its name (the main JS and the loader import
# each other), so browsers may keep them for good. Written to target/web-wasm/.
build_web_wasm() {
  local out="$ROOT/target/web-wasm" name="sendense-frontend"
  local wasm="$ROOT/target/wasm/wasm32-unknown-unknown/web/$name.wasm"
  (
    cd "$ROOT"
    # Debian's cargo/rustc first; std for wasm32 is compiled from its sources.
    PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 \
      CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19 \
      CARGO_TARGET_DIR="$ROOT/target/wasm" \
      cargo --color never rustc --locked --manifest-path frontend/Cargo.toml --bin "$name" --profile web \
        --target wasm32-unknown-unknown -- -Clink-arg=--emit-relocs 2>&1 | grep -vE '^\s*$' | tail -n 40
    exit "${PIPESTATUS[0]}"
  ) || die "the cockpit's wasm did not build (cargo's output is above)"
  rm -rf "$out" && mkdir -p "$out/split" "$out/bindgen" "$out/files"
  wasm-split-cli "$wasm" "$out/split" --out-name "$name" || die "wasm-split-cli could not split $wasm"
  wasm-bindgen --target web --keep-lld-exports --no-demangle --no-typescript \
    --out-dir "$out/bindgen" --out-name "$name" "$out/split/$name.wasm" || die "wasm-bindgen failed on $out/split/$name.wasm"
  rm "$out/split/$name.wasm"
  local file
  for file in "$out/bindgen/${name}_bg.wasm" "$out"/split/*.wasm; do
    # (binaryen 108 warns about name subsections newer than it; the names go anyway)
    if ! wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int \
        --enable-multivalue --strip-producers "$file" -o "$file.opt" 2>&1 |
        { grep -vE '^warning: (unknown name subsection|global index out of bounds in name section)' || true; } >&2; then
      die "wasm-opt failed on $file"
    fi
    mv "$file.opt" "$file"
  done
  local hash
  hash="$(cat "$out/bindgen/$name.js" "$out/bindgen/${name}_bg.wasm" "$out"/split/* | sha256sum | cut -c1-16)"
  sed -e "s#from \"./__wasm_split.js\"#from \"./__wasm_split-$hash.js\"#" \
    -e "s#'${name}_bg.wasm'#'${name}-${hash}_bg.wasm'#" "$out/bindgen/$name.js" > "$out/files/$name-$hash.js"
  mv "$out/bindgen/${name}_bg.wasm" "$out/files/$name-${hash}_bg.wasm"
  sed -E -e "s#\"\./$name\.js\"#\"./$name-$hash.js\"#" \
    -e "s#\"\./((split|chunk)_[A-Za-z0-9_]+)\.wasm\"#\"./\1-$hash.wasm\"#g" "$out/split/__wasm_split.js" > "$out/files/__wasm_split-$hash.js"
  for file in "$out"/split/*.wasm; do
    file="$(basename "$file" .wasm)"
    mv "$out/split/$file.wasm" "$out/files/$file-$hash.wasm"
  done
  # Every name the two scripts mention is there.
  grep -q "__wasm_split-$hash.js" "$out/files/$name-$hash.js" || die "the main JS does not import __wasm_split-$hash.js"
  local missing
  missing="$(grep -oE '"\./[^"]+\.(wasm|js)"' "$out/files/__wasm_split-$hash.js" | tr -d '"' | sed 's#^\./##' |
    while read -r file; do [ -f "$out/files/$file" ] || echo "$file"; done)"
  [ -z "$missing" ] || die "the wasm-split loader names missing files: $missing"
  # The lazy parts' files, for index.html's loader to prefetch.
  find "$out/files" -maxdepth 1 \( -name 'split_*.wasm' -o -name 'chunk_*.wasm' \) -printf '"%f"\n' | sort |
    paste -sd, | sed 's/^/[/; s/$/]/' > "$out/files/split-files-$hash.json"
  printf '%s\n' "split-files-$hash.json" > "$out/main-parts"
  printf '%s\n' "$name-$hash.js" > "$out/main-js"
  printf '%s\n' "$name-${hash}_bg.wasm" > "$out/main-wasm"
}

# build_web: builds the cockpit into dist/ unless nothing it is made from changed.
build_web() {
  local stamp="$ROOT/dist/.build-stamp"
  if [ -f "$stamp" ] && [ -f "$ROOT/dist/index.html" ] && [ -z "$(find "$ROOT/frontend" "$ROOT/shared-types" \
      "$ROOT/index.html" "$ROOT/Trunk.toml" "$ROOT/.cargo" "$ROOT/Cargo.lock" "$ROOT/Cargo.toml" -newer "$stamp" -print -quit)" ]; then
    step "Cockpit is up to date (dist/)"
    return 0
  fi
  step "Building the cockpit (wasm, release) into dist/"
  # Stamped with the time the build starts: a file changed while it runs
  # makes the next call build again.
  mkdir -p "$ROOT/target"
  local started; started="$(mktemp "$ROOT/target/.web-build-XXXXXX")"
  build_web_fonts
  build_web_wasm
  # trunk: the page, the styles and the fonts (it skips index.html's rust link).
  (
    cd "$ROOT"
    trunk --color never build --locked 2>&1 | grep -vE '^\s*$' | tail -n 40
    exit "${PIPESTATUS[0]}"
  ) || die "the cockpit did not build (trunk's output is above)"
  local out="$ROOT/target/web-wasm" js wasm parts
  js="$(cat "$out/main-js")" wasm="$(cat "$out/main-wasm")" parts="$(cat "$out/main-parts")"
  cp "$out"/files/* "$ROOT/dist/"
  grep -q '"/sendense:js"' "$ROOT/dist/index.html" || die "dist/index.html has no loader script to name the wasm in"
  sed -i -e "s#\"/sendense:js\"#\"/$js\"#" -e "s#\"/sendense:wasm\"#\"/$wasm\"#" \
    -e "s#\"/sendense:parts\"#\"/$parts\"#" -e '/data-trunk-skip/d' "$ROOT/dist/index.html"
  compress_web
  mv "$started" "$stamp"
}

# need_libvirt: libvirt 9 (bookworm) with QEMU 10 (bookworm-backports, to
# match the image's qemu-utils), the libvirt C library for the `virt` crate,
# and what lab guests are made of (busybox, dnsmasq for their networks).
# Backports comes in through a private apt configuration under
# $SENDENSE_APT_DIR (default ~/.cache/sendense/apt); the machine's own
# sources are never edited. See ../shared/libvirt/LIBVIRT.md.
need_libvirt() {
  local pkgs=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config
    qemu-system-x86 qemu-system-common qemu-system-data seabios ovmf busybox-static dnsmasq-base iptables libnbd-bin)
  local missing=() pkg
  for pkg in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "Installing libvirt and QEMU: ${missing[*]}"
    local dir="${SENDENSE_APT_DIR:-$HOME/.cache/sendense/apt}" mirror
    mkdir -p "$dir"/lists/partial "$dir"/archives/partial "$dir"/sources.list.d
    mirror="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
    { [ -f /etc/apt/sources.list.d/debian.sources ] && cat /etc/apt/sources.list.d/debian.sources
      printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror"
    } > "$dir/sources.list.d/all.sources"
    local apt=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$dir/sources.list.d"
      -o "Dir::State::lists=$dir/lists" -o "Dir::Cache::archives=$dir/archives" -o APT::Sandbox::User=root)
    local try
    for try in 1 2 3; do   # another install may hold dpkg's lock
      if as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt[@]}" update -qq &&
         as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt[@]}" install -y -qq --no-install-recommends \
           libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config \
           qemu-system-x86/bookworm-backports qemu-system-common/bookworm-backports \
           qemu-system-data/bookworm-backports seabios/bookworm-backports qemu-utils/bookworm-backports \
           ovmf busybox-static dnsmasq-base iptables libnbd-bin >/dev/null; then
        break
      fi
      [ "$try" = 3 ] && die "installing libvirt and QEMU failed (see apt's output above)"
      sleep 5
    done
  fi
  # libvirt 9.0 looks its default 'libvirt-qemu' user up before reading qemu.conf.
  getent group libvirt-qemu >/dev/null || as_root addgroup --system libvirt-qemu >/dev/null
  getent passwd libvirt-qemu >/dev/null || as_root adduser --system --ingroup libvirt-qemu \
    --home /var/lib/libvirt --no-create-home --disabled-login libvirt-qemu >/dev/null
}

# need_promtool: Prometheus's promtool (the tests check GET /metrics with
# `promtool check metrics`), unpacked from Debian's prometheus package into
# $SENDENSE_TOOLS_DIR (default ~/.cache/sendense/tools): the package itself,
# with its service, is not installed. Exports SENDENSE_PROMTOOL.
need_promtool() {
  local dir="${SENDENSE_TOOLS_DIR:-$HOME/.cache/sendense/tools}"
  if [ ! -x "$dir/promtool" ]; then
    step "Fetching promtool (Debian's prometheus package, unpacked in $dir)"
    mkdir -p "$dir/deb"
    (cd "$dir/deb" && rm -rf ./*.deb x &&
      { apt-get download prometheus >/dev/null 2>&1 ||
        { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get download prometheus >/dev/null; }; } &&
      dpkg -x ./prometheus_*.deb x && cp x/usr/bin/promtool "$dir/promtool.tmp" && mv "$dir/promtool.tmp" "$dir/promtool" &&
      rm -rf x ./*.deb) || die "could not fetch promtool (Debian package prometheus)"
  fi
  export SENDENSE_PROMTOOL="$dir/promtool"
}

# need_lighthouse: Google's Lighthouse (npm, a pinned version) in
# $SENDENSE_TOOLS_DIR/lighthouse; the e2e tests run it in Debian's Chromium.
LIGHTHOUSE_VERSION=12.8.2
need_lighthouse() {
  local dir="${SENDENSE_TOOLS_DIR:-$HOME/.cache/sendense/tools}/lighthouse"
  command -v npm >/dev/null || need_apt npm
  if [ "$(node -p "require('$dir/node_modules/lighthouse/package.json').version" 2>/dev/null)" != "$LIGHTHOUSE_VERSION" ]; then
    step "Installing Lighthouse $LIGHTHOUSE_VERSION (npm) in $dir"
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --silent --no-save "lighthouse@$LIGHTHOUSE_VERSION" >/dev/null) ||
      die "could not install Lighthouse from npm"
  fi
  export SENDENSE_LIGHTHOUSE="$dir/node_modules/.bin/lighthouse"
}

# need_guest_kit: the kernel and initramfs lab guests boot (in
# $SENDENSE_GUEST_KIT, default ~/.cache/sendense/guest-kit): Debian's kernel
# package unpacked (not installed), its virtio modules and busybox in an
# initramfs around scripts/guest/init. Rebuilt when that init changes.
need_guest_kit() {
  local kit="${SENDENSE_GUEST_KIT:-$HOME/.cache/sendense/guest-kit}"
  local init="$ROOT/scripts/guest/init"
  if [ -f "$kit/vmlinuz" ] && [ -f "$kit/initrd.cpio.gz" ] && [ "$kit/initrd.cpio.gz" -nt "$init" ]; then
    return 0
  fi
  need_libvirt
  step "Making the lab guests' kernel and initramfs in $kit"
  local dir="${SENDENSE_APT_DIR:-$HOME/.cache/sendense/apt}"
  local apt=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$dir/sources.list.d"
    -o "Dir::State::lists=$dir/lists" -o "Dir::Cache::archives=$dir/archives" -o APT::Sandbox::User=root)
  mkdir -p "$kit/kernel"
  if [ ! -f "$kit/vmlinuz" ]; then
    local pkg
    pkg="$(apt-cache "${apt[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
    [ -n "$pkg" ] || die "no linux-image package found for the lab guests"
    (cd "$kit/kernel" && rm -f ./*.deb && apt-get "${apt[@]}" download "$pkg" >/dev/null &&
      rm -rf x && dpkg -x ./*.deb x && rm -f ./*.deb) || die "could not fetch $pkg for the lab guests"
    cp "$kit"/kernel/x/boot/vmlinuz-* "$kit/vmlinuz.tmp" && mv "$kit/vmlinuz.tmp" "$kit/vmlinuz"
  fi
  local km root="$kit/rootfs"
  km="$(ls -d "$kit"/kernel/x/lib/modules/*/kernel | head -n1)"
  rm -rf "$root"; mkdir -p "$root"/{bin,proc,sys,dev,lib/modules}
  cp /bin/busybox "$root/bin/busybox"
  local m
  for m in drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_pci_legacy_dev.ko \
           drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci.ko drivers/block/virtio_blk.ko \
           net/core/failover.ko drivers/net/net_failover.ko drivers/net/virtio_net.ko \
           lib/crc16.ko crypto/crc32c_generic.ko lib/libcrc32c.ko fs/mbcache.ko fs/jbd2/jbd2.ko fs/ext4/ext4.ko \
           fs/fat/fat.ko fs/fat/vfat.ko fs/nls/nls_cp437.ko fs/nls/nls_ascii.ko fs/nls/nls_utf8.ko \
           drivers/input/evdev.ko drivers/acpi/button.ko drivers/char/virtio_console.ko; do
    [ -f "$km/$m" ] && cp "$km/$m" "$root/lib/modules/"
  done
  # The QEMU guest agent (quiesced backups freeze the guest's filesystems
  # through it), with the libraries it links.
  if [ ! -f "$kit/qga/usr/sbin/qemu-ga" ]; then
    (mkdir -p "$kit/qga" && cd "$kit/qga" && rm -f ./*.deb && apt-get "${apt[@]}" download qemu-guest-agent >/dev/null &&
      dpkg -x ./qemu-guest-agent_*.deb . && rm -f ./*.deb) || die "could not fetch qemu-guest-agent for the lab guests"
  fi
  cp "$kit/qga/usr/sbin/qemu-ga" "$root/bin/qemu-ga"
  local lib
  ldd "$kit/qga/usr/sbin/qemu-ga" | grep -q "not found" && die "qemu-ga for the lab guests needs libraries this machine lacks: $(ldd "$kit/qga/usr/sbin/qemu-ga" | grep "not found" | tr -s ' \t\n' ' ')"
  for lib in $(ldd "$kit/qga/usr/sbin/qemu-ga" | awk '/=> \//{print $3} /^\t\/lib64/{print $1}'); do
    mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"
  done
  cp "$init" "$root/init"
  (cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$kit/initrd.cpio.gz.tmp")
  mv "$kit/initrd.cpio.gz.tmp" "$kit/initrd.cpio.gz"
}

# The tests' object-storage servers, installed once into
# $SENDENSE_TEST_SERVICES_DIR (default ~/.cache/sendense/test-services) and
# started by the tests themselves on free loopback ports
# (backend/tests/support/object_servers.rs).
#
# need_moto: moto's S3 server (PyPI, pinned; only the S3 extra, not
# moto[server]) with boto3 for the tests' helper scripts, in a venv on
# Debian's Python. Exports SENDENSE_MOTO (moto_server) and
# SENDENSE_MOTO_PYTHON (the venv's python).
MOTO_PIP_SPEC=("moto[s3]==5.2.5" "flask==3.1.3" "flask-cors==6.0.5" "boto3==1.44.18")
need_moto() {
  local dir="${SENDENSE_TEST_SERVICES_DIR:-$HOME/.cache/sendense/test-services}/moto"
  local stamp="$dir/.sendense-installed"
  if [ ! -x "$dir/bin/moto_server" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${MOTO_PIP_SPEC[*]}" ]; then
    need_apt python3 python3-venv
    step "Installing moto ${MOTO_PIP_SPEC[0]#*==} (PyPI) in $dir"
    rm -rf "$dir"
    /usr/bin/python3 -m venv "$dir" || die "could not make a Python venv in $dir (Debian package python3-venv)"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "${MOTO_PIP_SPEC[@]}" ||
      die "could not install moto from PyPI into $dir"
    printf '%s' "${MOTO_PIP_SPEC[*]}" > "$stamp"
  fi
  export SENDENSE_MOTO="$dir/bin/moto_server" SENDENSE_MOTO_PYTHON="$dir/bin/python"
}

# need_azurite: Microsoft's Azure Storage emulator (npm, pinned: 3.35.0 is
# the newest that runs on Debian's Node). Exports SENDENSE_AZURITE
# (azurite-blob, the Blob service alone).
AZURITE_VERSION=3.35.0
need_azurite() {
  local dir="${SENDENSE_TEST_SERVICES_DIR:-$HOME/.cache/sendense/test-services}/azurite"
  command -v npm >/dev/null || need_apt npm
  if [ "$(node -p "require('$dir/node_modules/azurite/package.json').version" 2>/dev/null)" != "$AZURITE_VERSION" ]; then
    step "Installing Azurite $AZURITE_VERSION (npm) in $dir"
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --silent --no-save "azurite@$AZURITE_VERSION" >/dev/null) ||
      die "could not install Azurite from npm"
  fi
  export SENDENSE_AZURITE="$dir/node_modules/.bin/azurite-blob"
}
