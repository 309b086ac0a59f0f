#!/usr/bin/env python3
"""How much of a real blocklist the built-in default blocks, level by level.

Usage (from the project root):
    python3 tests/tools/default_coverage.py [--open] [LIST...]

Reads core/policy/data/builtin.rules (level "telemetry") and builtin-full.rules (level "full",
applied on top of telemetry) and, for each hagezi-style list (one domain per line, meaning the
domain and its subdomains; default: the three native.* lists in ../shared/data/blocklists/),
prints how many of its names each level blocks. With --open it also prints the names the
telemetry level leaves open, grouped by family (first-label stem @ registrable domain), so they
can be classified: telemetry missed (add a rule) or content/login/CDN left open on purpose.

It also checks two probe sets written below: names the telemetry level must block (embargo mode's
telemetry hosts and the names the tests rely on) and content/login/CDN names it must leave open (TikTok has to keep working).
Exit status 1 if a probe fails.

The matcher is an independent Python reading of the native format (core/policy/src/parse/embargo.rs)
with its label wildcard patterns:
  name        the name and its subtree           =name      exactly the name
  a*b.x.com   `*` = any run of characters inside one label (never a dot); the pattern covers the
              matching name and its subtree (`=` prefix: the matching name only)
  /regex/     a regular expression searched in the name
  @@R, allow R   exception: a matching name is not blocked (name exceptions beat name blocks)
  owner: X    (full level) names whose owner, from `owns:` facts, contains X as a whole word
ASN, address and country rules need an address and are not measured here (names only).
The lists are test data only (see ../shared/data/SOURCES.md); nothing from them is written out.
"""

import os
import re
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "core", "policy", "data")
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "blocklists")
LEVELS = [("telemetry", ["builtin.rules"]), ("full", ["builtin.rules", "builtin-full.rules"])]

# Must be blocked at level telemetry (embargo mode's telemetry hosts, and names the tests rely on).
MUST_BLOCK = """
log.tiktokv.com mon.tiktokv.com log-va.tiktokv.com mon-va.tiktokv.com x.log.tiktokv.com
mssdk-va.tiktokv.com log.us.tiktokv.com ib.snssdk.com toblog.ctobsnssdk.com sdk-log.pangle.io
mon.isnssdk.com log16-normal-c-useast1a.tiktokv.com log77-normal-c-alisg.tiktokv.com
mcs-va.tiktok.com analytics.tiktok.com mon.zijieapi.com client_monitor.isnssdk.com
mcs.tobsnssdk.com api-access.pangolin-sdk-toutiao.com apmplus.volces.com
otheve.beacon.qq.com oth.eve.mdt.qq.com h.trace.qq.com pingma.qq.com pingjs.qq.com tajs.qq.com android.bugly.qq.com
mi.gdt.qq.com sdk.e.qq.com tpstelemetry.tencent.com
ulogs.umeng.com c.cnzz.com log.mmstat.com adash-c.ut.taobao.com
cn-hangzhou.log.aliyuncs.com myproject.ap-southeast-1.log.aliyuncs.com mdap.alipay.com
hm.baidu.com hmma.baidu.com mobads.baidu.com
metrics1.data.hicloud.com metrics-drcn.dt.dbankcloud.cn datacollector-dra.dt.hicloud.com
logservice.hicloud.com
""".split()

# Must stay open at level telemetry: content APIs, video/image CDNs, login, messaging, web.
MUST_OPEN = """
api16-normal-c-useast1a.tiktokv.com api22-normal-c-alisg.tiktokv.com api-h2.tiktokv.com
api16-core-c-useast1a.tiktokv.com webcast-va.tiktokv.com im-api-va.tiktokv.com
frontier-va.tiktokv.com frontier100-normal.tiktokv.com login.tiktokv.com login.tiktok.com
www.tiktok.com m.tiktok.com vm.tiktok.com webcast.tiktok.com v16-webapp.tiktok.com
lemon8-api.tiktokv.com common16-normal.tiktokv.com logo.tiktokv.com logistics.tiktok.com
v16m.tiktokcdn.com p16-sign-va.tiktokcdn.com p16-sign-sg.tiktokcdn.com v19-us.tiktokcdn.com
lf16-tiktok-common.ibytedtos.com sf16-website-login.neutral.ttwstatic.com
v16-webapp-prime.us.tiktok.com i.snssdk.com is.snssdk.com lf-hl.snssdk.com aweme.snssdk.com
api.amemv.com api5-normal-lf.amemv.com webcast3-normal-c-lf.amemv.com imapi-sg.isnssdk.com
passport.tiktokv.com search-va.tiktokv.com
www.capcut.com edit-api-sg.capcut.com
weixin.qq.com wx.qq.com www.qq.com bugly.qq.com cloud.tencent.com
www.taobao.com acs.m.taobao.com g.alicdn.com www.alipay.com mobilegw.alipay.com oss-cn-hangzhou.aliyuncs.com
www.baidu.com m.baidu.com map.baidu.com
grs.hicloud.com dnkeeper.hicloud.com consumer.huawei.com
example.org
""".split()


def labels(name):
    return name.strip(".").lower().split(".")


def glob_label(pat, lab):
    if "*" not in pat:
        return pat == lab
    return re.fullmatch(".*".join(re.escape(p) for p in pat.split("*")), lab) is not None


class Rules:
    def __init__(self):
        self.blocks, self.allows = [], []  # (kind, value, exact, text)
        self.owners = {}  # domain -> owner
        self.owner_blocks = []

    def load(self, path):
        for raw in open(path, encoding="utf-8"):
            # `#` starts a comment at the start of a line or after whitespace.
            line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
            if not line:
                continue
            allow = False
            if line.startswith("@@"):
                allow, line = True, line[2:].strip()
            elif re.match(r"allow\s", line):
                allow, line = True, line[5:].strip()
            m = re.match(r"([A-Za-z-]+):(.*)", line)
            if m and not re.match(r"^[0-9a-fA-F:]+(/\d+)?$", line):
                key, val = m.group(1).lower(), m.group(2).strip()
                if key == "owns":
                    owner, doms = val.split("=", 1)
                    for d in re.split(r"[,\s]+", doms.strip()):
                        if d:
                            self.owners[d.lower()] = owner.strip()
                elif key == "owner":
                    (self.allows if allow else self.blocks).append(("owner", val.lower(), False, raw))
                continue  # country:, app-owner: need an address or an app
            if re.match(r"^AS\d+$", line, re.I) or re.match(r"^[0-9.:a-fA-F]+(/\d+)?$", line):
                continue  # ASN / address rules: not measurable on names
            if line.startswith("/") and line.endswith("/") and len(line) > 2:
                rule = ("regex", re.compile(line[1:-1]), False, raw)
            else:
                exact = line.startswith("=")
                rule = ("name", labels(line.lstrip("=")), exact, raw)
                if "*" in line:
                    pl = rule[1]
                    last_star = max(i for i, l in enumerate(pl) if "*" in l)
                    assert len(pl) - last_star - 1 >= 2, f"fixed suffix < 2 labels: {line}"
            (self.allows if allow else self.blocks).append(rule)

    def owner_of(self, name):
        ls = labels(name)
        for i in range(len(ls)):
            o = self.owners.get(".".join(ls[i:]))
            if o:
                return o
        return None

    def matches(self, rule, name):
        kind, val, exact, _ = rule
        if kind == "regex":
            return val.search(name) is not None
        if kind == "owner":
            o = self.owner_of(name)
            # As ruleset/mod.rs owner_matches: the rule's text as a whole word anywhere in the owner.
            return o is not None and re.search(r"(?<![a-z0-9])" + re.escape(val) + r"(?![a-z0-9])", o.lower()) is not None
        ls = labels(name)
        if len(ls) < len(val) or (exact and len(ls) != len(val)):
            return False
        tail = ls[len(ls) - len(val):]
        return all(glob_label(p, l) for p, l in zip(val, tail))

    def decide(self, name):
        """The first matching block rule, or None (open). Exceptions beat blocks."""
        if any(self.matches(r, name) for r in self.allows):
            return None
        for r in self.blocks:
            if self.matches(r, name):
                return r
        return None


def registrable(name):
    ls = labels(name)
    two = {"com.cn", "net.cn", "org.cn", "co.uk", "com.br", "web.app"}
    n = 3 if ".".join(ls[-2:]) in two else 2
    return ".".join(ls[-n:])


def family(name):
    stem = re.match(r"[a-z_]*", labels(name)[0]).group(0) or labels(name)[0]
    return f"{stem}* @ {registrable(name)}"


def read_list(path):
    out = []
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line.lower())
    return out


def main(argv):
    show_open = "--open" in argv
    lists = [a for a in argv if not a.startswith("--")] or [
        os.path.join(SHARED, f) for f in ("native.tiktok.txt", "native.huawei.txt", "native.xiaomi.txt")
    ]
    levels = []
    for level, files in LEVELS:
        r = Rules()
        for f in files:
            r.load(os.path.join(DATA, f))
        levels.append((level, r))
    tel = levels[0][1]
    print(f"rules: telemetry {len(tel.blocks)} blocks / {len(tel.allows)} exceptions, "
          f"full adds {len(levels[1][1].blocks) - len(tel.blocks)} blocks")
    print(f"{'list':<22}{'names':>6}" + "".join(f"{lv:>18}" for lv, _ in levels))
    opens = {}
    for path in lists:
        names = read_list(path)
        row = f"{os.path.basename(path):<22}{len(names):>6}"
        for level, r in levels:
            n = sum(1 for x in names if r.decide(x))
            row += f"{n:>9} ({100 * n / len(names):5.1f}%)"
            if level == "telemetry":
                opens[path] = [x for x in names if not r.decide(x)]
        print(row)
    failed = False
    for x in MUST_BLOCK:
        if not tel.decide(x):
            print(f"PROBE FAIL: {x} must be blocked at level telemetry")
            failed = True
    for x in MUST_OPEN:
        r = tel.decide(x)
        if r:
            print(f"PROBE FAIL: {x} must stay open at level telemetry; blocked by: {r[3].strip()}")
            failed = True
    if not failed:
        print(f"probes: {len(MUST_BLOCK)} must-block and {len(MUST_OPEN)} must-open names all hold")
    if show_open:
        for path, names in opens.items():
            groups = defaultdict(list)
            for x in names:
                groups[family(x)].append(x)
            print(f"\n== left open at telemetry: {os.path.basename(path)} ({len(names)} names, {len(groups)} families)")
            for fam, xs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
                print(f"  {len(xs):>4}  {fam:<36} {' '.join(xs[:4])}{' ...' if len(xs) > 4 else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
