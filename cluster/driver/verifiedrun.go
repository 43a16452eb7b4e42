package driver

// VerifiedProgramEnv is the variable by which VerifiedRun tells the program
// it started which digest it checked, and of which file.
const VerifiedProgramEnv = "CAIRN_VERIFIED_PROGRAM"

// ProgramCacheEnv names the directory of the cache of verified program
// copies that VerifiedRun keeps on each node, or "off" (see VerifiedRun).
const ProgramCacheEnv = "CAIRN_PROGRAM_CACHE"

// VerifiedRun is the shell script by which a backend whose jobs start
// through /bin/sh (Slurm's batch script, a Kubernetes container) runs a
// staged program: it runs "$2..." from a private copy of the program $2
// whose SHA-256 it checked is $1 (issue 8, item 12). The staged file is
// read once, by cp, into a directory only this user can enter; the digest
// is taken of the copy, which no other user can change, and the copy is
// what runs, so a file replaced between the check and the start cannot
// run. The program runs as a child rather than through exec so that its
// directory is removed when it ends; the shell forwards nothing (Slurm
// signals every process of the job) and exits with the program's status,
// or 128+N when a signal N ended the program or the shell.
//
// Checked copies are kept, by digest, in a private cache on the node, so
// that the jobs of one build after the first start without copying or
// hashing the program again (for a binary of 80 MB, 0.14 s of CPU per job
// and as many megabytes written). The cache is $CAIRN_PROGRAM_CACHE
// (ProgramCacheEnv; "off" disables it), else $XDG_CACHE_HOME/cairn/programs,
// else $HOME/.cache/cairn/programs. It is used only if it is an absolute
// path to a directory (not a link) owned by this user that neither group
// nor others may write; its parents must not let other users rename it
// either (a home directory does not). A job that finds its digest there
// runs a hard link of the cached copy, made in a private directory of the
// cache: the copy was checked when it was put there, and the link keeps
// it for the job even if another job evicts it meanwhile. After adding a
// copy, a job keeps the eight copies used last and removes what jobs
// killed more than a week ago left. Without a usable cache, the private
// directory is made under $TMPDIR (default /tmp), which must not let other
// users rename its entries (/tmp is sticky): otherwise they could swap the
// whole directory between the check and the start.
//
// The digest is taken with openssl where it exists (it uses the CPU's
// SHA instructions: about twice as fast as coreutils' sha256sum, which is
// the fallback). The program runs with VerifiedProgramEnv set to
// "sha256:HEX PATH", the digest checked and the copy's path, so that a
// cairn worker that finds itself at PATH need not hash itself again.
const VerifiedRun = `cairn_want=$1 cairn_prog=$2
shift 2
cairn_cache=${CAIRN_PROGRAM_CACHE:-}
if [ -z "$cairn_cache" ]; then
	if [ -n "${XDG_CACHE_HOME:-}" ]; then
		cairn_cache=$XDG_CACHE_HOME/cairn/programs
	elif [ -n "${HOME:-}" ] && [ "$HOME" != / ]; then
		cairn_cache=$HOME/.cache/cairn/programs
	fi
fi
case $cairn_cache in
/*) [ -d "$cairn_cache" ] || (umask 077 && mkdir -p -- "$cairn_cache") 2>/dev/null ;;
*) cairn_cache= ;;
esac
if [ -n "$cairn_cache" ] && [ -d "$cairn_cache" ] && [ ! -h "$cairn_cache" ] && [ -O "$cairn_cache" ]; then
	case $(ls -ld -- "$cairn_cache" 2>/dev/null) in
	d????-??-*) ;;
	*) cairn_cache= ;;
	esac
else
	cairn_cache=
fi
if [ -n "$cairn_cache" ] && cairn_tmp=$(mktemp -d "$cairn_cache/.run.XXXXXXXX" 2>/dev/null); then
	:
elif cairn_tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-program.XXXXXXXX"); then
	cairn_cache=
else
	echo "cairn: cannot make a private directory for the program under ${TMPDIR:-/tmp}" >&2
	exit 126
fi
trap 'rm -rf -- "$cairn_tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
cairn_entry=${cairn_cache:+$cairn_cache/$cairn_want}
if [ -n "$cairn_entry" ] && [ -f "$cairn_entry" ] && [ ! -h "$cairn_entry" ] && [ -O "$cairn_entry" ] &&
	ln -- "$cairn_entry" "$cairn_tmp/program" 2>/dev/null; then
	touch -c -- "$cairn_entry" 2>/dev/null
else
	if ! cp -- "$cairn_prog" "$cairn_tmp/program"; then
		echo "cairn: cannot copy the program $cairn_prog" >&2
		exit 126
	fi
	if ! { cairn_got=$(openssl dgst -sha256 -r <"$cairn_tmp/program" 2>/dev/null) || cairn_got=$(sha256sum <"$cairn_tmp/program"); }; then
		echo "cairn: cannot verify the program (neither openssl nor sha256sum)" >&2
		exit 126
	fi
	cairn_got=${cairn_got%% *}
	if [ "$cairn_got" != "$cairn_want" ]; then
		echo "cairn: the program $cairn_prog has SHA-256 $cairn_got, not $cairn_want as submitted: refusing to run it" >&2
		exit 126
	fi
	chmod 700 "$cairn_tmp/program"
	if [ -n "$cairn_entry" ] && ln -- "$cairn_tmp/program" "$cairn_tmp/entry" 2>/dev/null &&
		mv -f -- "$cairn_tmp/entry" "$cairn_entry" 2>/dev/null; then
		ls -t -- "$cairn_cache" 2>/dev/null | tail -n +9 | while IFS= read -r cairn_old; do
			case $cairn_old in
			*[!0-9a-f]* | '') ;;
			*) rm -f -- "$cairn_cache/$cairn_old" ;;
			esac
		done
		find "$cairn_cache" -mindepth 1 -maxdepth 1 -name '.run.*' -mtime +7 -exec rm -rf -- {} + 2>/dev/null
	fi
fi
CAIRN_VERIFIED_PROGRAM="sha256:$cairn_want $cairn_tmp/program"
export CAIRN_VERIFIED_PROGRAM
set +e
"$cairn_tmp/program" "$@"
cairn_status=$?
exit $cairn_status`
