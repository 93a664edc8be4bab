"""What ``qcmb-parsl`` tells the shell: one exit status per meaning, one line per failure.

Exit status: 0 done; 1 the computation failed (fragments failed, or an optimization did not converge);
2 bad input or environment (an input, model chemistry, configuration, cache directory, output path or
command line), refused before anything is computed; 130, 143 or 129 stopped by SIGINT, SIGTERM or
SIGHUP, with one line saying what was kept; 70 (sysexits' EX_SOFTWARE) anything unexpected, a fault of
this program. A failure prints one line, ``qcmb-parsl: error: ...``, on stderr.
"""

from __future__ import annotations

PROG = "qcmb-parsl"
#: Exit status of an unexpected error (a fault of this program, not of the input): sysexits' EX_SOFTWARE.
EXIT_UNEXPECTED = 70


class UsageError(Exception):
    """A command line argparse rejects: exit status 2."""


class CampaignFailedError(Exception):
    """Some inputs of a campaign had failed fragments: exit status 1."""


def exit_status(exc: BaseException) -> int:
    """2 for what the user can fix (input, environment), 1 for a computation that failed, else
    :data:`EXIT_UNEXPECTED`."""
    from ..errors import (
        CacheError,
        ConfigurationError,
        FragmentsFailedError,
        InputError,
        OptimizationFailed,
        OutputError,
    )

    if isinstance(exc, (UsageError, InputError, ConfigurationError, CacheError, OutputError)):
        return 2
    if isinstance(exc, (FragmentsFailedError, OptimizationFailed, CampaignFailedError)):
        return 1
    return EXIT_UNEXPECTED


def one_line(exc: BaseException) -> str:
    """The error line's text: our errors as they say it, anything else named as unexpected."""
    from ..errors import QcmbParslError

    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (UsageError, CampaignFailedError, QcmbParslError)):
        return text
    return f"unexpected {type(exc).__name__}: {text} (rerun with --debug for the traceback)"
