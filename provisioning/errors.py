"""The root of the operator's and technician's tools' errors (protocol/errors.py has the whole
tree and the exit codes). Each class carries its `exit_code` and, where there is one, the
`remedy` the `faregate` command prints after the message; none of them imports the command.

    ProvisioningError (FaregateError)            exit 1
     +-- SiteError, SiteErrors (site.py)          exit 2  a site file's problems, with file:line
     +-- KeyFileError (operator_keys.py)          exit 2  a key or credential file is missing or bad
     |    +-- CredentialExpired                   exit 4  outside its validity by this clock
     +-- BuildError (image_build.py)              exit 2  the image cannot be built from this tree
     +-- PortChoiceError (ports.py)               exit 3  no gate found, or several
     +-- TransportError (transport.py)            exit 3
     |    +-- PortOpenError (+ OSError)                   missing, busy, not permitted, not a tty
     |    +-- NotAnswering (+ TimeoutError)               no wanted frame after every retry
     |    +-- Disconnected (+ ConnectionError)            the port went away mid-exchange
     +-- DeviceRefused (console.py)               exit 4 for a refused identity, else 1
     +-- DeviceMisbehaves (console.py)            exit 4  the gate's answer does not check out
     +-- FlashError (flasher.py)                  exit 1, or 3 when the gate stops answering
          +-- Refused                             exit 4 for a refused signature/key, else 1

An error that gathers several (SiteErrors) keeps them in `errors`: the command prints one line
for each of the others first, then its own.
"""

from protocol.errors import FaregateError


class ProvisioningError(FaregateError):
    """Root of provisioning's errors."""

    reason = "provisioning"
