package main

// dsh completion bash|zsh: a completion script for the verbs, their flags
// and (from dsh apps -q, at completion time) the tenant's app names.

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

func completionVerb(*flag.FlagSet) func(*call) error {
	return func(x *call) error {
		switch x.arg(0) {
		case "bash":
			writeBash(x.stdout)
		case "zsh":
			fmt.Fprint(x.stdout, "#compdef dsh\n# dsh completion for zsh: eval \"$(dsh completion zsh)\"\nautoload -U +X bashcompinit && bashcompinit\n")
			writeBash(x.stdout)
		default:
			return usageError{fmt.Sprintf("shell %q: want bash or zsh", x.arg(0))}
		}
		return nil
	}
}

// verbFlags are each verb's flags as --name, for the completion scripts.
func verbFlags() map[string][]string {
	out := map[string][]string{}
	for _, v := range verbs {
		fs := flag.NewFlagSet(v.name, flag.ContinueOnError)
		fs.String("url", "", "")
		fs.String("tenant", "", "")
		fs.Bool("json", false, "")
		v.setup(fs)
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, "-"+strings.Repeat("-", min(len(f.Name)-1, 1))+f.Name) })
		sort.Strings(names)
		out[v.name] = names
	}
	return out
}

// writeBash writes the bash script (zsh runs it through bashcompinit).
func writeBash(w io.Writer) {
	names := []string{"run", "login", "logout", "help"}
	for _, v := range verbs {
		names = append(names, v.name)
	}
	fmt.Fprint(w, `# dsh completion for bash: eval "$(dsh completion bash)"
_dsh() {
    local cur verb i
    cur="${COMP_WORDS[COMP_CWORD]}"
    verb=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            --url|--tenant) ((i++)) ;;
            -*) ;;
            *) verb="${COMP_WORDS[i]}"; break ;;
        esac
    done
    if [[ -z "$verb" ]]; then
        COMPREPLY=($(compgen -W "`+strings.Join(names, " ")+`" -- "$cur"))
        return
    fi
    local flags=""
    case "$verb" in
`)
	flags := verbFlags()
	for _, v := range verbs {
		fmt.Fprintf(w, "        %s) flags=%q ;;\n", v.name, strings.Join(flags[v.name], " "))
	}
	fmt.Fprint(w, `    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return
    fi
    case "$verb" in
        completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
        apps|run|login|logout|help) COMPREPLY=($(compgen -f -- "$cur")) ;;
        *)
            # The app is the first word after the verb.
            local n=0
            for ((i = i + 1; i < COMP_CWORD; i++)); do
                [[ "${COMP_WORDS[i]}" != -* ]] && ((n++))
            done
            if ((n == 0)); then
                COMPREPLY=($(compgen -W "$(dsh apps -q 2>/dev/null)" -- "$cur"))
            fi
            ;;
    esac
}
complete -F _dsh dsh
`)
}
