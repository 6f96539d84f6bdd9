#!/usr/bin/env bash
# DNS benchmark (not a test): dnsperf, an A + PTR mix over COUNT machines, against Kiln's rack,
# BIND 9 (authoritative for the same zones, made from the rack's own snapshot) and dnsmasq (the same
# names from a hosts file), one after the other in one run. Each server is pinned to core 0 and
# dnsperf to core 1, in two network namespaces joined by a veth (nothing touches the host's
# interfaces). Everything started is stopped by PID, and the namespaces deleted, at exit.
#   tests/bench/dns.sh [COUNT] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-10000}
SECS=${2:-10}
need=()
for b in dnsperf:dnsperf named:bind9 dnsmasq:dnsmasq-base dig:bind9-dnsutils; do
  command -v "${b%%:*}" >/dev/null || need+=("${b##*:}")
done
[ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
cargo build --release -q -p region
KILN=$PWD/target/release/kiln
WORK=$(mktemp -d /tmp/kiln-dnsbench.XXXXXX); chmod 755 "$WORK"
TAG=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
S=kds$TAG; C=kdc$TAG
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in $S $C; do
    for p in $(ip netns pids $n 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $n 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add $S; ip netns add $C
ip -n $S link set lo up; ip -n $C link set lo up
ip link add bs0 netns $S type veth peer name bc0 netns $C
ip -n $S addr add 10.40.0.1/16 dev bs0; ip -n $C addr add 10.40.0.2/16 dev bc0
ip -n $S link set bs0 up; ip -n $C link set bc0 up
inS() { ip netns exec $S "$@"; }
bg() { local log=$1; shift; ip netns exec $S "$@" >"$log" 2>&1 & PIDS+=($!); }
stop_last() { local p=${PIDS[-1]}; kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; unset 'PIDS[-1]'; sleep 0.5; }
wait_dns() { for _ in $(seq 100); do ip netns exec $C dig +short +time=1 +tries=1 @10.40.0.1 "$1" A | grep -q . && return 0; sleep 0.2; done; echo "no answer for $1" >&2; return 1; }

DATA=$WORK/kiln
echo "bench-password" | "$KILN" admin create-user admin --admin --password-stdin --data-dir "$DATA" 2>/dev/null
TOKEN=$("$KILN" admin create-token admin --data-dir "$DATA")
bg "$WORK/kiln.log" env KILN_LOG=warn taskset -c 0 "$KILN" all-in-one --data-dir "$DATA" --listen 127.0.0.1:5240 \
  --no-dhcp --no-ra --tftp-bind 127.0.0.1:69 --http-bind 127.0.0.1:5248 --dns-bind 10.40.0.1:53
KPID=${PIDS[-1]}
for _ in $(seq 100); do inS curl -sf http://127.0.0.1:5240/healthz >/dev/null && break; sleep 0.1; done
inS "$KILN" subnets create 10.40.0.0/16 --url http://127.0.0.1:5240 --token "$TOKEN" >/dev/null
echo "# DNS benchmark: $COUNT machines, dnsperf ${SECS} s per server ($(nproc) cores, server on core 0, dnsperf on core 1, $(date -u +%F))"
inS taskset -c 1 "$KILN" bench create --url http://127.0.0.1:5240 --token "$TOKEN" --count "$COUNT" --concurrency 16 --ip-base 10.40.1.0

# The names and addresses, from the snapshot the rack serves; the query file (half A, half PTR),
# BIND's zones and dnsmasq's hosts file from the same list.
SNAP=$DATA/rack/snapshot.json
for _ in $(seq 300); do
  [ -f "$SNAP" ] && python3 -c "import json,sys; s=json.load(open('$SNAP')); sys.exit(0 if sum(1 for m in s['machines'] for i in m['interfaces'] if i.get('ip'))>=$COUNT else 1)" 2>/dev/null && break
  sleep 0.2
done
python3 - "$SNAP" "$WORK" <<'PY'
import json, sys, random
snap, work = json.load(open(sys.argv[1])), sys.argv[2]
hosts = [(m["hostname"], i["ip"]) for m in snap["machines"] for i in m["interfaces"] if i.get("ip")]
random.seed(1)
with open(f"{work}/queries.txt", "w") as q:
    for _ in range(200000):
        h, ip = random.choice(hosts)
        if random.random() < 0.5:
            q.write(f"{h}.kiln A\n")
        else:
            a, b, c, d = ip.split(".")
            q.write(f"{d}.{c}.{b}.{a}.in-addr.arpa PTR\n")
serial = 1
with open(f"{work}/kiln.zone", "w") as z:
    z.write(f"$TTL 30\n@ IN SOA ns.kiln. hostmaster.kiln. {serial} 600 1800 604800 30\n@ IN NS ns.kiln.\nns IN A 10.40.0.1\n")
    for h, ip in hosts:
        z.write(f"{h} IN A {ip}\n")
with open(f"{work}/rev.zone", "w") as z:
    z.write(f"$TTL 30\n@ IN SOA ns.kiln. hostmaster.kiln. {serial} 600 1800 604800 30\n@ IN NS ns.kiln.\n")
    for h, ip in hosts:
        a, b, c, d = ip.split(".")
        z.write(f"{d}.{c} IN PTR {h}.kiln.\n")
with open(f"{work}/hosts", "w") as f:
    for h, ip in hosts:
        f.write(f"{ip} {h}.kiln\n")
print(f"{len(hosts)} machines with addresses; 200000 queries (A and PTR, half each)")
PY
FIRST=$(awk '/ A$/ {print $1; exit}' "$WORK/queries.txt")

echo
echo "| server | queries/s | avg latency ms | lost | ratio to BIND |"
echo "|---|---|---|---|---|"
declare -A QPS
perf() { # $1 label: dnsperf from core 1; prints the table row later
  local out; out=$(ip netns exec $C taskset -c 1 dnsperf -s 10.40.0.1 -d "$WORK/queries.txt" -l "$SECS" -c 20 -q 200 2>&1)
  local qps lat lost
  qps=$(echo "$out" | awk '/Queries per second/ {print $4}')
  lat=$(echo "$out" | awk '/Average Latency/ {print $4*1000}')
  lost=$(echo "$out" | awk '/Queries lost/ {print $3}')
  QPS[$1]=$qps
  LINE[$1]="| $1 | ${qps%.*} | ${lat} | ${lost} |"
  ANS=$(echo "$out" | awk '/Response codes/ {print}')
  echo "$1: $ANS" >&2
}
declare -A LINE
wait_dns "$FIRST"
perf "Kiln (rack, hickory-server)"
stop_last

cat > "$WORK/named.conf" <<NAMED
options { directory "$WORK"; listen-on port 53 { 10.40.0.1; }; listen-on-v6 { none; }; recursion no;
  allow-query { any; }; pid-file "$WORK/named.pid"; querylog no; minimal-responses yes; };
logging { category default { null; }; category lame-servers { null; }; };
zone "kiln" { type master; file "$WORK/kiln.zone"; };
zone "40.10.in-addr.arpa" { type master; file "$WORK/rev.zone"; };
NAMED
bg "$WORK/named.log" taskset -c 0 named -g -n 1 -u root -c "$WORK/named.conf"
wait_dns "$FIRST"
perf "BIND $(named -v | awk '{print $2}') (authoritative, 1 thread)"
stop_last

bg "$WORK/dnsmasq.log" taskset -c 0 dnsmasq --keep-in-foreground --no-resolv --no-hosts --addn-hosts="$WORK/hosts" \
  --listen-address=10.40.0.1 --bind-interfaces --port 53 --cache-size=0 --no-negcache --local=/kiln/ --user=root --pid-file=
wait_dns "$FIRST"
perf "dnsmasq $(dnsmasq -v | awk 'NR==1 {print $3}') (hosts file)"
stop_last

BIND_QPS=${QPS[$(printf '%s\n' "${!QPS[@]}" | grep '^BIND')]}
for k in "${!LINE[@]}"; do
  ratio=$(python3 -c "print(f'{float(\"${QPS[$k]}\")/float(\"$BIND_QPS\"):.2f}')")
  echo "${LINE[$k]} $ratio |"
done | sort
grep -h "rack" "$WORK/kiln.log" | tail -n 3 >&2 || true
