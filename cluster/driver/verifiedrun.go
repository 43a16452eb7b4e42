package driver

// VerifiedProgramEnv is the variable by which VerifiedRun tells the program
// it started which digest it checked, and of which file.
const VerifiedProgramEnv = "CAIRN_VERIFIED_PROGRAM"

// VerifiedRun is the shell script by which a backend whose jobs start
// through /bin/sh (Slurm's batch script, a Kubernetes container) runs a
// staged program: it runs "$2..." from a private copy of the program $2 after
// checking that the copy's SHA-256 is $1 (issue 8, item 12). The staged
// file is read once, by cp, into a directory only this user can enter; the
// digest is taken of the copy, which no other user can change, and the copy
// is what runs, so a file replaced between the check and the start cannot
// run. The program runs as a child rather than through exec so that the
// copy is removed when it ends; the shell forwards nothing (Slurm signals
// every process of the job) and exits with the program's status, or
// 128+N when a signal N ended the program or the shell. The private
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
if ! cairn_tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-program.XXXXXXXX"); then
	echo "cairn: cannot make a private directory for the program under ${TMPDIR:-/tmp}" >&2
	exit 126
fi
trap 'rm -rf -- "$cairn_tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
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
CAIRN_VERIFIED_PROGRAM="sha256:$cairn_want $cairn_tmp/program"
export CAIRN_VERIFIED_PROGRAM
set +e
"$cairn_tmp/program" "$@"
cairn_status=$?
exit $cairn_status`
