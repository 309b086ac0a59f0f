//! A fixed run of name decisions for instruction counting: the deterministic figure for "no
//! loss in decision speed" on a shared, noisy host.
//!
//! ```text
//! cargo build --release -p embargo-policy --example decisions
//! D=target/release/examples/decisions
//! $D prepare /tmp/dec                       # natively: compile the sets, write the queries
//! valgrind --tool=callgrind --toggle-collect='decisions::run' \
//!     --callgrind-out-file=/tmp/dec/cg.sb $D run /tmp/dec stevenblack
//! callgrind_annotate /tmp/dec/cg.sb | head  # total Ir / 20 000 = instructions per decision
//! ```
//!
//! `prepare` builds the StevenBlack set (exact rules) and the generated 1M set (subtree rules)
//! as `memory.rs` does, writes their compiled files and 20 000 queries each (half listed names
//! or a subdomain of one, half unlisted, as in the bench), so that the run under valgrind only
//! opens a file and decides. Only [`run`] is counted (`--toggle-collect`). A third set,
//! `patterns`, is StevenBlack with 1 000 label patterns under the suffixes of its names.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use embargo_policy::parse::{parse_bytes, Format};
use embargo_policy::{
    Action, AppRules, IpDb, NamePattern, NameRule, Policy, Query, Rule, RuleRef, RuleSetBuilder,
};

#[path = "../benches/support/gen.rs"]
mod gen;

/// Decisions per run.
const N: usize = 20_000;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

fn queries(names: &[String], others: &[String]) -> String {
    let mut rng = gen::SplitMix(3);
    let mut out = String::new();
    for i in 0..N {
        if i % 2 == 0 {
            let n = &names[rng.below(names.len() as u64) as usize];
            if i % 4 != 0 {
                out.push_str("x.");
            }
            out.push_str(n);
        } else {
            out.push_str(&others[rng.below(others.len() as u64) as usize]);
        }
        out.push('\n');
    }
    out
}

fn prepare(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let others = gen::other_names(100_000);
    let text = std::fs::read_to_string(data("blocklists/stevenblack-hosts.txt")).unwrap();
    let names = gen::stevenblack_names(&text);
    let mut b = RuleSetBuilder::new();
    parse_bytes(
        Format::Hosts,
        "stevenblack-hosts.txt",
        text.as_bytes(),
        &mut |r| b.add(r),
    );
    std::fs::write(dir.join("stevenblack.set"), b.build().as_bytes()).unwrap();
    std::fs::write(dir.join("stevenblack.q"), queries(&names, &others)).unwrap();

    // The same list with 1 000 label patterns (`*-x*.example.com`, `x*.example.com`) keyed by
    // the last two labels of its names, and its queries, half of whose listed names start
    // with `x.`: the cost of lookups that reach patterns.
    let mut b = RuleSetBuilder::new();
    parse_bytes(
        Format::Hosts,
        "stevenblack-hosts.txt",
        text.as_bytes(),
        &mut |r| b.add(r),
    );
    let mut rng = gen::SplitMix(11);
    let mut patterns = String::new();
    for _ in 0..500 {
        let n = &names[rng.below(names.len() as u64) as usize];
        let labels: Vec<&str> = n.rsplitn(3, '.').take(2).collect();
        if labels.len() == 2 {
            let suffix = format!("{}.{}", labels[1], labels[0]);
            patterns.push_str(&format!("x*.{suffix}\n*-x*.{suffix}\n"));
        }
    }
    parse_bytes(
        Format::Embargo,
        "patterns.rules",
        patterns.as_bytes(),
        &mut |r| b.add(r),
    );
    std::fs::write(dir.join("patterns.set"), b.build().as_bytes()).unwrap();
    std::fs::write(dir.join("patterns.q"), queries(&names, &others)).unwrap();

    let names = gen::names(1_000_000);
    let mut b = RuleSetBuilder::new();
    for (i, n) in names.iter().enumerate() {
        b.add(Rule::Name(NameRule {
            pattern: NamePattern::Subtree(n.clone()),
            action: Action::Block,
            important: false,
            dnstype: None,
            denyallow: vec![],
            badfilter: false,
            source: RuleRef {
                list: "generated-1m".into(),
                line: i as u32 + 1,
                rule: Default::default(),
            },
        }));
    }
    std::fs::write(dir.join("1m.set"), b.build().as_bytes()).unwrap();
    std::fs::write(dir.join("1m.q"), queries(&names, &others)).unwrap();
}

/// The counted part: one decision per query.
#[inline(never)]
fn run(policy: &Policy, queries: &[&str]) -> usize {
    let mut blocked = 0;
    for q in queries {
        let d = black_box(policy.decide(&Query::name(q)));
        blocked += usize::from(d.verdict == embargo_policy::Verdict::Block);
    }
    blocked
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("prepare") => prepare(Path::new(&args[2])),
        Some("run") => {
            let dir = Path::new(&args[2]);
            let which = &args[3];
            let bytes = std::fs::read(dir.join(format!("{which}.set"))).unwrap();
            let set = embargo_policy::RuleSet::from_bytes(bytes).unwrap();
            let policy = Policy::new(vec![Arc::new(set)], IpDb::new(), AppRules::default());
            let text = std::fs::read_to_string(dir.join(format!("{which}.q"))).unwrap();
            let qs: Vec<&str> = text.lines().collect();
            let blocked = run(&policy, &qs);
            println!("{which}: {} decisions, {blocked} blocked", qs.len());
        }
        _ => eprintln!("usage: decisions prepare DIR | decisions run DIR stevenblack|1m|patterns"),
    }
}
