"""The process exit codes of every command and of the daemon, defined once.

0 success (records may still have been dead-lettered: see the summary); 1 a runtime failure (a sink or
source that cannot be used, a daemon that could not shut down cleanly); 2 usage or configuration error;
3 rules failed validation or tests; 10 ``--fail-on-alert`` and an alert at or above the given level was raised.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_RULES = 3
EXIT_ALERT = 10
