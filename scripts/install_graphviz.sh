#!/usr/bin/env bash
# Installs Graphviz (for the report's picture of the stage graph) from Debian's packages when `dot`
# is missing. Best effort: without root or apt, the run still writes reports/dag.dot and says so.
set -u
command -v dot >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "graphviz: installing from Debian's packages"
  (apt-get install -y -qq graphviz >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null)) \
    || echo "note: could not install graphviz; the DAG picture is skipped"
else
  echo "note: graphviz (dot) is missing and cannot be installed here; the DAG picture is skipped"
fi
exit 0
