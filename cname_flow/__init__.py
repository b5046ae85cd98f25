"""cname-flow: bind custom domains to Alibaba Cloud OSS buckets as a resumable state machine.

CNAME token (CreateCnameToken) → ``_dnsauth`` TXT record through a DNS provider → propagation
checked at every authoritative nameserver → PutCname → verification through ListCname.
"""

from cname_flow.errors import CnameFlowError
from cname_flow.model import Binding, CnameEntry, CnameToken, Phase, Step, normalize_domain

__version__ = "0.1.0"

__all__ = [
    "Binding",
    "CnameEntry",
    "CnameFlowError",
    "CnameToken",
    "Phase",
    "Step",
    "__version__",
    "normalize_domain",
]
