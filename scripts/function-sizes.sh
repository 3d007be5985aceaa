#!/usr/bin/env bash
# The longest functions of the C++ sources, in lines (the last line minus the
# first plus one, as Universal Ctags sees them; a lambda counts as a function
# of its own and also inside the one that holds it).
#
#   scripts/function-sizes.sh [-n N] [-l LIMIT] [-x FUNCTION]... [DIR]...
#
# Prints the longest N (default 10) of DIR (default: probe coordinator storage
# common) as "lines file:line name". With -l, exits 1 when a function is over
# LIMIT lines, naming it, unless it is an exception given with -x (its full
# name as printed, e.g. vantage::coordinator::CoordinatorMetrics::CoordinatorMetrics).
set -euo pipefail
cd "$(dirname "$0")/.."

count=10
limit=
exceptions=()
while getopts "n:l:x:" opt; do
  case $opt in
    n) count=$OPTARG ;;
    l) limit=$OPTARG ;;
    x) exceptions+=("$OPTARG") ;;
    *) echo "usage: $0 [-n N] [-l LIMIT] [-x FUNCTION]... [DIR]..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(probe coordinator storage common)

# Universal Ctags (it knows where a function ends); Debian installs it as
# ctags-universal, with ctags as an alternative that may point elsewhere.
ctags=$(command -v ctags-universal || command -v ctags) ||
  { echo "function-sizes.sh: ctags not found (Debian package universal-ctags)" >&2; exit 2; }

"$ctags" -x --languages=C++ --c++-kinds=f --fields=+ne -R --output-format=json "${dirs[@]}" |
  python3 -c '
import json, sys
count, limit = int(sys.argv[1]), sys.argv[2]
exceptions = set(sys.argv[3:])
sizes = []
for line in sys.stdin:
    tag = json.loads(line)
    if "end" not in tag:
        continue
    name = tag["name"] if "scope" not in tag else tag["scope"] + "::" + tag["name"]
    sizes.append((tag["end"] - tag["line"] + 1, tag["path"], tag["line"], name))
sizes.sort(key=lambda s: (-s[0], s[1], s[2]))
for lines, path, first, name in sizes[:count]:
    print(f"{lines} {path}:{first} {name}")
if limit:
    over = [s for s in sizes if s[0] > int(limit) and s[3] not in exceptions]
    for lines, path, first, name in over:
        print(f"function-sizes.sh: {name} ({path}:{first}) is {lines} lines, over {limit}", file=sys.stderr)
    sys.exit(1 if over else 0)
' "$count" "$limit" "${exceptions[@]}"
