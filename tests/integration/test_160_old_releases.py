"""What an older httpd lacks is said at start-up (make check-compat).

Before 2.4.53 httpd keeps a member URL in 96 bytes and cuts longer ones
(its own AH02808); the probe path comes from the same cut URL, so the
module names every such BBSTATUS member (BBS0007). From 2.4.53 on there is
no such limit, and nothing is logged.
"""

import re

import pytest

from bbs import murl
from httpd import version as httpd_version

HAS_NAME_EX = httpd_version() >= (2, 4, 53)
# 96 bytes and more once the scheme, address and port come first
LONG_PATH = "/bitbucket/" + "x" * 90


# AH010118: 2.4.53 and later say the same at info level, and go on.
# BBS0030: where the URL is cut, the probe asks the cut path, whose answer
# is no /status document; the only member fails, and a tenth of a second
# later the balancer is in panic, if the test is still running by then.
@pytest.mark.allow_log(r"AH02808", r"AH010118", r"BBS0007", r"BBS0030")
def test_member_url_cut_by_httpd_is_named_at_start(sim, httpd_factory):
    nodes = sim([("n", "bitbucket", "RUNNING")])
    h = httpd_factory()
    url = murl(nodes, "n", LONG_PATH)
    h.start("<Proxy balancer://bb>\n"
            f"    BalancerMember {url} hcmethod=BBSTATUS hcinterval=1\n"
            "</Proxy>\n")
    log = h.error_log()
    named = re.findall(r"BBS0007: balancer://bb member (\S+): httpd "
                       r"(\S+) keeps only (\d+) characters", log)
    if HAS_NAME_EX:
        assert not named, log
        assert "AH02808" not in log, log
        return
    assert len(named) == 1, log
    cut, release, limit = named[0]
    assert url.startswith(cut) and len(cut) == int(limit) < len(url), named
    assert release == ".".join(map(str, httpd_version())), named
