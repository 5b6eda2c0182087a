# SPDX-License-Identifier: MIT
# bash completion for ivlink(1)

_ivlink()
{
	local cur prev words cword
	# bash-completion's helper when it is there; plain bash otherwise.
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
	fi

	local commands="peers info ring listen dump peek poke demo help"
	local global_opts="-S --socket --shm --file --plain --json -v --verbose -h --help --version"
	local common_opts="-S --socket --shm --file --plain --json -v --verbose -h --help"

	# Values of options that take one.
	case $prev in
	-S | --socket | --file | --plain)
		if declare -F _filedir >/dev/null; then
			_filedir
		else
			COMPREPLY=($(compgen -f -- "$cur"))
		fi
		return
		;;
	--shm)
		local names
		names=$(command ls /dev/shm 2>/dev/null)
		COMPREPLY=($(compgen -W "$names" -- "$cur"))
		return
		;;
	--type)
		local types="join leave doorbell down"
		local prefix=""
		[[ $cur == *,* ]] && prefix=${cur%,*},
		COMPREPLY=($(compgen -P "$prefix" -W "$types" -- "${cur##*,}"))
		compopt -o nospace 2>/dev/null
		return
		;;
	-n | --count | -t | --timeout | -o | --offset | -l | --length | --bytes | --string | --name)
		return
		;;
	esac

	# Find the command: the first word that is not an option or its value.
	local i cmd="" cmd_index=0
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-S | --socket | --shm | --file | --plain)
			((i++))
			;;
		-*) ;;
		*)
			cmd=${words[i]}
			cmd_index=$i
			break
			;;
		esac
	done

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
	fi

	local opts=""
	case $cmd in
	peers | info | demo) ;;
	ring) opts="-n --count" ;;
	listen) opts="-n --count -t --timeout --type --name" ;;
	dump) opts="-o --offset -l --length -a --absolute --raw-offset" ;;
	peek) opts="-l --length -a --absolute --raw-offset --u8 --u16 --u32 --u64 -n --count" ;;
	poke) opts="-a --absolute --raw-offset --force --u8 --u16 --u32 --u64 --bytes --string --nul" ;;
	help)
		if ((cword == cmd_index + 1)); then
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
		;;
	*) return ;;
	esac

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts $common_opts" -- "$cur"))
		return
	fi
	# ring: PEER is a number or "all", VECTOR a number or "all".
	if [[ $cmd == ring ]]; then
		COMPREPLY=($(compgen -W "all" -- "$cur"))
	fi
}
complete -F _ivlink ivlink
