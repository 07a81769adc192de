# bash completion for cascade: subcommands, their options, option values that have a fixed set,
# files where a file is expected, and stage names read from the pipeline file in use.

# Stage names of a pipeline file: the keys indented by two spaces under `stages:`.
_cascade_stages() {
  [ -r "$1" ] || return 0
  awk '/^stages:/ { s = 1; next }
       s && /^[^ #]/ { s = 0 }
       s && /^  [A-Za-z0-9_.-]+:/ { sub(/^  /, ""); sub(/:.*/, ""); print }' "$1" 2>/dev/null
}

# Pipeline files (*.yaml, *.yml) and directories to descend into; plain patterns, so this works
# whether or not extglob is on.
_cascade_yaml_files() {
  compopt -o filenames 2>/dev/null
  COMPREPLY=($(compgen -f -X '!*.yaml' -- "$cur") $(compgen -f -X '!*.yml' -- "$cur") $(compgen -d -- "$cur"))
}

_cascade() {
  local cur prev words cword
  if declare -F _init_completion >/dev/null; then
    _init_completion || return
  else
    cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
  fi

  local global_opts="--help --version --log-level --log-format"
  local commands="validate run sync invoke sql export queues alarms dlq demo"
  local dlq_actions="list show redrive purge"

  # The subcommand (and dlq action) typed so far, the pipeline file named so far, and whether a
  # positional argument has been given already.
  local cmd="" action="" pipeline="" positional=0 i w
  for ((i = 1; i < cword; i++)); do
    w=${words[i]}
    case $w in
      --log-level | --log-format | --storage | --listen | --poll | --event | --history | \
        -f | --format | -s | --stage | --reason | --message | --dir | --seed | \
        --employees-per-branch | --sales-per-salesperson | --ticks | -o | --output | --where | \
        --limit | --max-width | --null)
        ((i++)) ;;
      -p | --pipeline) ((i++)); pipeline=${words[i]} ;;
      --pipeline=*) pipeline=${w#--pipeline=} ;;
      -*) ;;
      *)
        if [ -z "$cmd" ]; then cmd=$w
        elif [ "$cmd" = dlq ] && [ -z "$action" ]; then action=$w
        else
          positional=$((positional + 1))
          case $cmd in validate | run | sync | queues | alarms) pipeline=$w ;; esac
        fi ;;
    esac
  done
  [ -n "$pipeline" ] || pipeline=${CASCADE_PIPELINE:-cascade.yaml}

  case $prev in
    --log-level) COMPREPLY=($(compgen -W "trace debug info warn error off" -- "$cur")); return ;;
    --log-format) COMPREPLY=($(compgen -W "json text" -- "$cur")); return ;;
    -f | --format)
      if [ "$cmd" = export ]; then COMPREPLY=($(compgen -W "csv jsonl" -- "$cur"))
      else COMPREPLY=($(compgen -W "table csv json" -- "$cur")); fi
      return ;;
    -o | --output) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return ;;
    -p | --pipeline) _cascade_yaml_files; return ;;
    --event) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")); return ;;
    -s | --stage) COMPREPLY=($(compgen -W "$(_cascade_stages "$pipeline")" -- "$cur")); return ;;
    --storage) COMPREPLY=($(compgen -W "sqlite:" -- "$cur")); compopt -o nospace 2>/dev/null; return ;;
    --listen | --poll | --history | --reason | --message | --seed | --employees-per-branch | \
      --sales-per-salesperson | --ticks | --where | --limit | --max-width | --null) return ;;
  esac

  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "$commands $global_opts" -- "$cur"))
    return
  fi

  local opts=""
  case $cmd in
    validate) opts="-p --pipeline" ;;
    alarms) opts="-p --pipeline --storage --json --history" ;;
    run) opts="-p --pipeline --storage --listen --no-listen --poll --allow-unauthenticated" ;;
    sync) opts="-p --pipeline --storage --event --json --drain --progress-every" ;;
    invoke) opts="--event -p --pipeline --storage --json" ;;
    sql) opts="-p --pipeline --storage -f --format --limit --max-width --null" ;;
    export) opts="-p --pipeline --storage -f --format -o --output --where --limit --no-header" ;;
    queues) opts="-p --pipeline --storage --json" ;;
    demo) opts="--dir --seed --employees-per-branch --sales-per-salesperson --ticks" ;;
    dlq)
      if [ -z "$action" ]; then
        COMPREPLY=($(compgen -W "$dlq_actions --help" -- "$cur"))
        return
      fi
      opts="-s --stage --reason --message -p --pipeline --storage"
      [ "$action" = list ] && opts="$opts --json" ;;
  esac
  # --log-level and friends belong to `cascade` itself: they are accepted before the subcommand only.
  opts="$opts --help"

  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  case $cmd in
    validate | run | sync | queues | alarms)
      ((positional == 0)) && _cascade_yaml_files ;;
    invoke)
      ((positional == 0)) && COMPREPLY=($(compgen -W "$(_cascade_stages "$pipeline")" -- "$cur")) ;;
  esac
}

complete -F _cascade cascade
