# Stages and their times, for .ci/run and .ci/long (sourced from the repository's root after
# `root` is set). `step NAME` ends the stage before and starts NAME; on exit, success or not,
# Garage is stopped if it was started and a table says how long each stage took.
ci_start=$(date +%s)
stage_names=()
stage_starts=()
garage_home=

step() {
  stage_names+=("$*")
  stage_starts+=("$(date +%s)")
  printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"
}

stages_table() {
  local status=$1 end i next
  end=$(date +%s)
  printf '\n=== stage times (%s)\n' "$([ "$status" = 0 ] && echo 'all passed' || echo "failed: exit $status")"
  for ((i = 0; i < ${#stage_names[@]}; i++)); do
    next=$end
    if ((i + 1 < ${#stage_names[@]})); then next=${stage_starts[i + 1]}; fi
    printf '%6d s  %s\n' $((next - stage_starts[i])) "${stage_names[i]}"
  done
  printf '%6d s  total (%d min)\n' $((end - ci_start)) $(((end - ci_start + 59) / 60))
}

ci_exit() {
  local status=$1
  if [ -n "$garage_home" ]; then bash "$root/.ci/garage.sh" stop "$garage_home" || true; fi
  stages_table "$status"
  exit "$status"
}
trap 'ci_exit $?' EXIT
