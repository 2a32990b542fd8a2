"""The root of the simulator's and back office's errors (protocol/errors.py has the whole tree).

SimError (FaregateError)                     exit 2: a file the user wrote cannot be used
 +-- ScenarioError (+ ValueError)  host_sim/station/scenario.py: names the file, key, problem
 +-- TariffError (+ ValueError)    host_sim/backoffice/clearing.py: a tariff that cannot apply
 +-- ChargeError (+ ValueError)    host_sim/backoffice/clearing.py: a correction that cannot apply
 +-- RiskError (+ ValueError)      host_sim/backoffice/risk.py: a setting or decision it refuses
 +-- SimURLError (+ ValueError)    host_sim/hardware/simbus.py: a sim: URL that names nothing
 +-- PublishRefused                host_sim/backoffice/publishing.py: a blob gates would refuse
 +-- ConfigError                   host_sim/backoffice/config.py: a problem with its line
 +-- StoreUnavailable              host_sim/backoffice/backends.py: a PostgreSQL it cannot open
 +-- PowerDiskError (+ ValueError) host_sim/hardware/powerdisk.py: a fault it cannot model
 +-- StatementError                host_sim/backoffice/statements.py: one it cannot make or read
 +-- NoProof                       host_sim/backoffice/logview.py: exit 1, no such record or head
 +-- PlateError (+ ValueError)     host_sim/backoffice/plates.py: a plate or review decision refused
"""

from protocol.errors import EXIT_USAGE, FaregateError


class SimError(FaregateError):
    """Root of host_sim's errors."""

    reason = "bad_input"
    exit_code = EXIT_USAGE
