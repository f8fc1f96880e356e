#!/bin/sh
# Runs build/usher under valgrind; used as USHER_BIN to run the integration
# tests under valgrind:  make valgrind   (reports land in build/valgrind/)
dir=$(dirname "$0")/..
mkdir -p "$dir/build/valgrind"
exec valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --log-file="$dir/build/valgrind/usher.%p.log" \
  "$dir/build/usher" "$@"
