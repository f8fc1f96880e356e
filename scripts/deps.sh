#!/usr/bin/env bash
# Installs the Debian packages usher needs for a purpose, or says how to.
#
#   scripts/deps.sh [build|test|bench|fuzz|pkg|h2spec]...   (default: build test)
#
# As root, missing packages are installed with apt-get. Otherwise the exact
# apt-get line is printed and the script fails.
set -euo pipefail

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(build test)

pkgs=()
for w in "${want[@]}"; do
  case $w in
    # libjs-chart.js, python3: the dashboard's charts, inlined by scripts/embed.py;
    # libc-ares-dev: DNS discovery (src/upstream/discover.c)
    build) pkgs+=(gcc make pkg-config node-llhttp libyaml-dev libssl-dev libnghttp2-dev
                  libjs-chart.js python3 libc-ares-dev) ;;
    # systemd, man-db, logrotate: the packaging tests (systemd-analyze verify,
    # man -l, logrotate -d); chromium, its driver and selenium: the dashboard
    # in a real browser (test_dashboard.py); dnsmasq-base: the DNS server of
    # the discovery tests (test_discovery.py)
    test)  pkgs+=(libcmocka-dev python3 python3-pytest python3-httpx curl openssl
                  systemd man-db logrotate nghttp2-client python3-h2 python3-prometheus-client
                  chromium chromium-driver python3-selenium dnsmasq-base) ;;
    bench) pkgs+=(wrk haproxy nginx-light curl procps prometheus dnsmasq-base) ;;
    fuzz)  pkgs+=(clang libclang-rt-14-dev) ;;
    # h2spec from source, offline (../shared/tools/h2spec/build.sh): Go and
    # the Go libraries it imports, from Debian
    h2spec) pkgs+=(golang-go golang-golang-x-net-dev golang-golang-x-sys-dev golang-golang-x-text-dev
                   golang-github-spf13-cobra-dev golang-github-spf13-pflag-dev
                   golang-github-inconshreveable-mousetrap-dev golang-github-fatih-color-dev
                   golang-github-mattn-go-colorable-dev golang-github-mattn-go-isatty-dev) ;;
    # make deb: dpkg-buildpackage and dh, then lintian on the result
    pkg)   pkgs+=(dpkg-dev debhelper fakeroot lintian) ;;
    *) echo "deps.sh: unknown purpose '$w' (expected build, test, bench, fuzz, pkg or h2spec)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}" >&2
  echo "deps.sh: run as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
