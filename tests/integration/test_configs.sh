#!/usr/bin/env bash
# Every configs/*.ini names its command (a "# s2crop-command: ..." line), every key in it is a real option of that
# command, and the command reads each value as written (`--print-config` shows the effective configuration). Every
# subcommand has an INI file. An unknown key is an error naming it.
source "$(dirname "$0")/../lib.sh"
CONFIGS="$S2CROP_SOURCE_DIR/configs"
declare -A covered=()
for ini in "$CONFIGS"/*.ini; do
  name="$(basename "$ini")"
  command="$(sed -n 's/^# s2crop-command: *//p' "$ini")"
  [ -n "$command" ] || fail "$name does not say its command (# s2crop-command: ...)"
  covered["$command"]=1
  # shellcheck disable=SC2086
  "$S2CROP" $command --config "$ini" --print-config > "$WORK/effective" 2> "$WORK/err" \
    || { cat "$WORK/err"; fail "$name: s2crop $command refuses it"; }
  # Each key = value of the file must be in the effective configuration with that value.
  "$PY" - "$ini" "$WORK/effective" <<'PY' || fail "$name: a key was not read as written"
import sys
def pairs(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip()
    return out
ini, eff = pairs(sys.argv[1]), pairs(sys.argv[2])
bad = [k for k, v in ini.items() if k not in eff or (eff[k] != v and not (v in ("true", "false") and eff[k] == v))]
for k in bad:
    print(f"  {k} = {ini[k]!r} -> effective {eff.get(k)!r}")
sys.exit(1 if bad else 0)
PY
  pass "$name: $(grep -cvE '^\s*(#|;|$)' "$ini") keys of s2crop $command"
  # A file named after its command shows that command's defaults: its values must be the settings structs'
  # initialisers (the one place of a default), so a default changed there cannot be undone by a stale INI value.
  if [ "$name" = "${command// /-}.ini" ]; then
    # shellcheck disable=SC2086
    "$S2CROP" $command --print-config > "$WORK/defaults" 2> "$WORK/err" || { cat "$WORK/err"; fail "s2crop $command --print-config"; }
    diff <(grep -v '^config = ' "$WORK/effective") "$WORK/defaults" > "$WORK/drift" \
      || { cat "$WORK/drift"; fail "$name: values differ from the defaults of s2crop $command (< the file, > the built-in)"; }
  fi
done
for command in synth composite import-timesen2crop import-bigearthnet extract train classify assess plan mosaic \
               "ndvi train" "ndvi evaluate" "ndvi predict" pretrain "segment train" "segment evaluate" "segment predict"; do
  [ -n "${covered[$command]:-}" ] || fail "no INI file in configs/ for s2crop $command"
done
pass "every subcommand has an INI file"

# The check can fail: a misspelt key is refused by name.
printf 'block-size = 64\nblok-size = 32\n' > "$WORK/typo.ini"
expect_failure ini_typo "blok-size" -- "$S2CROP" composite --config "$WORK/typo.ini" --print-config
