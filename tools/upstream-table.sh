#!/usr/bin/env bash
# The README's table of upstream suites on tcpdrill: per suite of ../shared/packetdrill-corpus (or the folder
# given), how many scripts there are, how many parse, and how many pass, fail and are skipped on the reference
# backend and (as root) on the linux backend, run with packetdrill's run_all.py IPv4 flags from each script's
# folder. Prints a markdown table; skip reasons are listed below it, counted.
#
#   sudo tools/upstream-table.sh [CORPUS]      (builds target/release/tcpdrill first)
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${1:-../shared/packetdrill-corpus}"
cargo build --release -q -p tcpdrill
bin="$PWD/target/release/tcpdrill"
flags=(--send_omit_free --ip_version=ipv4 --local_ip=192.168.0.1 --gateway_ip=192.168.0.1
  --netmask_ip=255.255.0.0 --remote_ip=192.0.2.1 -D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable
  -D CMSG_LEVEL_IP=SOL_IP -D CMSG_TYPE_RECVERR=IP_RECVERR)
reasons=$(mktemp)
trap 'rm -f "$reasons"' EXIT

echo "| suite | scripts | parse | reference: pass / fail / skip | linux: pass / fail / skip |"
echo "|---|---:|---:|---|---|"
for suite in "$corpus"/*/; do
  name=$(basename "$suite")
  mapfile -t files < <(find "$suite" -name '*.pkt' | sort)
  [ "${#files[@]}" -gt 0 ] || continue
  parse=0
  declare -A n=([rp]=0 [rf]=0 [rs]=0 [lp]=0 [lf]=0 [ls]=0)
  for f in "${files[@]}"; do
    "$bin" check "$f" >/dev/null 2>&1 && parse=$((parse + 1))
    line=$(cd "$(dirname "$f")" && "$bin" run -D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable \
      -D CMSG_LEVEL_IP=SOL_IP -D CMSG_TYPE_RECVERR=IP_RECVERR "$(basename "$f")" 2>/dev/null | head -1 || true)
    case "$line" in
      *": ok"*) n[rp]=$((n[rp] + 1)) ;;
      *": skipped ("*) n[rs]=$((n[rs] + 1)); echo "reference: ${line#*: skipped (}" | sed 's/line [0-9]*/line N/; s/)$//' >>"$reasons" ;;
      *) n[rf]=$((n[rf] + 1)) ;;
    esac
    if [ "$(id -u)" = 0 ]; then
      out=$(cd "$(dirname "$f")" && timeout 200 "$bin" "${flags[@]}" "$(basename "$f")" 2>&1) && n[lp]=$((n[lp] + 1)) || {
        case "$out" in
          *"cannot run on the linux backend"*) n[ls]=$((n[ls] + 1)); echo "linux: ${out#*: cannot run on the linux backend: }" | head -1 | sed 's/line [0-9]*/line N/' >>"$reasons" ;;
          *) n[lf]=$((n[lf] + 1)) ;;
        esac
      }
    fi
  done
  linux="not run (needs root)"
  [ "$(id -u)" = 0 ] && linux="${n[lp]} / ${n[lf]} / ${n[ls]}"
  echo "| $name | ${#files[@]} | $parse | ${n[rp]} / ${n[rf]} / ${n[rs]} | $linux |"
done
echo
echo "Skip reasons:"
sort "$reasons" | uniq -c | sort -rn | sed 's/^/    /'
