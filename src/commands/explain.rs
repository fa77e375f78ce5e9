//! `txp explain`: why a detection was made. Reads its row (chunk, output file, the figures stored
//! with it, `txp_core::engine::Figures`) and says, figure by figure, which threshold it met under
//! the current settings. Every comparison is exact: integers, and means by cross-multiplication.

use std::cmp::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde::Serialize;
use txp_core::Pattern;
use txp_core::decimal::{format_micros, parse_signed_micros, parse_unsigned_micros};
use txp_core::engine::{Figures, compare_means};
use txp_core::importance::WeightSum;
use txp_core::thresholds::Thresholds;
use txp_entity::{detection, output_file};

use super::status::{db_error, known_streams, streams_hint};
use super::upload::{connect, runtime};
use crate::Outcome;
use crate::cli::ExplainArgs;
use crate::error::Error;
use crate::settings::Settings;

/// One condition of the pattern, checked against the stored figures.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The setting it compares with, when there is one.
    pub setting: Option<&'static str>,
    pub met: bool,
    pub text: String,
}

/// What `txp explain --json` prints (docs/operations.md).
#[derive(Debug, Serialize)]
struct Explained {
    stream: String,
    pattern: &'static str,
    pattern_id: &'static str,
    customer: String,
    merchant: String,
    shard: i32,
    chunk: i64,
    detected_at_ms: i64,
    file: Option<FileRef>,
    /// The figures exactly as stored (JSON), `null` when none were.
    figures: Option<serde_json::Value>,
    checks: Vec<Check>,
}

#[derive(Debug, Serialize)]
struct FileRef {
    id: i64,
    name: String,
    /// The detection's row in the file, from 0 (after the header).
    row: Option<i32>,
    written: bool,
}

/// `sum / count` as a decimal, truncated to 6 places and marked `…` when inexact.
fn quotient(sum_micros: i128, count: u64) -> String {
    if count == 0 {
        return "undefined".to_owned();
    }
    let count = i128::from(count);
    let (q, r) = (sum_micros / count, sum_micros % count);
    let sign = if q == 0 && sum_micros < 0 { "-" } else { "" };
    let text = format!("{sign}{}", format_micros(q));
    if r == 0 { text } else { format!("{text}…") }
}

fn missing(what: &str) -> Check {
    Check { setting: None, met: false, text: format!("{what}: not stored with the detection") }
}

/// A mean weight `[sum, count]` as stored, exact.
fn weight(stored: Option<&(String, u64)>) -> Option<WeightSum> {
    let (sum, count) = stored?;
    Some(WeightSum { sum_micros: parse_signed_micros(sum.as_bytes())?, count: *count })
}

fn upgrade_checks(f: &Figures, t: &Thresholds) -> Vec<Check> {
    let mut checks = vec![Check {
        setting: Some("patterns.upgrade.min_merchant_txns"),
        met: f.merchant_txns > t.upgrade_min_merchant_txns,
        text: format!(
            "N(m) = {} merchant transactions > {} (patterns.upgrade.min_merchant_txns)",
            f.merchant_txns, t.upgrade_min_merchant_txns
        ),
    }];
    match (f.pair_txns, f.k, f.count_cutoff) {
        (Some(n), Some(k), Some(cutoff)) => {
            let expected_k = t.upgrade_top_pct.rank_of(f.merchant_customers);
            let note = if expected_k == k {
                String::new()
            } else {
                format!(" (with the current setting k would be {expected_k})")
            };
            checks.push(Check {
                setting: Some("patterns.upgrade.top_pct"),
                met: n >= cutoff,
                text: format!(
                    "n(c,m) = {n} transactions ≥ {cutoff}, the k-th largest count, k = {k} = max(1, ceil({}% × {} customers)) (patterns.upgrade.top_pct){note}",
                    t.upgrade_top_pct, f.merchant_customers
                ),
            });
        }
        _ => checks.push(missing("UPGRADE's count cut-off")),
    }
    match (f.j, weight(f.pair_weight.as_ref()), weight(f.weight_cutoff.as_ref())) {
        (Some(j), Some(pair), Some(cutoff)) => checks.push(Check {
            setting: Some("patterns.upgrade.bottom_pct"),
            met: compare_means(pair, cutoff) != Ordering::Greater,
            text: format!(
                "w(c,m) = {} / {} = {} ≤ {} / {} = {}, the j-th smallest mean weight, j = {j} (bottom {}% of weighted customers, patterns.upgrade.bottom_pct)",
                format_micros(pair.sum_micros),
                pair.count,
                quotient(pair.sum_micros, pair.count),
                format_micros(cutoff.sum_micros),
                cutoff.count,
                quotient(cutoff.sum_micros, cutoff.count),
                t.upgrade_bottom_pct
            ),
        }),
        _ => checks.push(missing("UPGRADE's weight cut-off")),
    }
    checks
}

fn child_checks(f: &Figures, t: &Thresholds) -> Vec<Check> {
    let Some(n) = f.pair_txns else { return vec![missing("n(c,m)")] };
    let mut checks = vec![Check {
        setting: Some("patterns.child.min_txns"),
        met: n > t.child_min_txns,
        text: format!("n(c,m) = {n} transactions > {} (patterns.child.min_txns)", t.child_min_txns),
    }];
    match f.pair_amount.as_deref().and_then(|a| parse_unsigned_micros(a.as_bytes())) {
        Some(sum) => {
            let limit = t.child_max_avg_amount;
            let met = limit.micros().checked_mul(u128::from(n)).is_some_and(|bound| sum < bound);
            checks.push(Check {
                setting: Some("patterns.child.max_avg_amount"),
                met,
                text: format!(
                    "average S(c,m) / n(c,m) = {} / {n} = {} < {limit} (patterns.child.max_avg_amount)",
                    format_micros(i128::try_from(sum).unwrap_or(i128::MAX)),
                    quotient(i128::try_from(sum).unwrap_or(i128::MAX), n)
                ),
            });
        }
        None => checks.push(missing("S(c,m)")),
    }
    checks
}

fn dei_checks(f: &Figures, t: &Thresholds) -> Vec<Check> {
    vec![
        Check {
            setting: Some("patterns.dei.min_female_customers"),
            met: f.female_customers > t.dei_min_female_customers,
            text: format!(
                "F(m) = {} female customers > {} (patterns.dei.min_female_customers)",
                f.female_customers, t.dei_min_female_customers
            ),
        },
        Check {
            setting: None,
            met: f.female_customers < f.male_customers,
            text: format!("F(m) = {} < M(m) = {} male customers", f.female_customers, f.male_customers),
        },
    ]
}

/// Each condition of `pattern`, checked against `figures` under `thresholds`.
pub fn checks(pattern: Pattern, figures: &Figures, thresholds: &Thresholds) -> Vec<Check> {
    match pattern {
        Pattern::Upgrade => upgrade_checks(figures, thresholds),
        Pattern::Child => child_checks(figures, thresholds),
        Pattern::DeiNeeded => dei_checks(figures, thresholds),
    }
}

/// The detection of this key, trying each name as given, then without the surrounding white space
/// a copy from a file can bring (a CSV line's `\r`), and without the leading `'` that output files
/// add to names that start like a spreadsheet formula.
async fn find(
    db: &DatabaseConnection,
    stream: &str,
    pattern: Pattern,
    customer: &str,
    merchant: &str,
) -> Result<Option<detection::Model>, DbErr> {
    let forms = |name: &str| {
        let mut forms = vec![name.to_owned()];
        for form in [name.trim(), name.trim().strip_prefix('\'').unwrap_or(name.trim())] {
            if !forms.iter().any(|f| f == form) {
                forms.push(form.to_owned());
            }
        }
        forms
    };
    let merchants = forms(merchant);
    for c in &forms(customer) {
        for m in &merchants {
            let key = (stream.to_owned(), pattern.id().to_owned(), c.clone(), m.clone());
            if let Some(found) = detection::Entity::find_by_id(key).one(db).await? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

fn time_text(ms: i64) -> String {
    let since = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(UNIX_EPOCH + since).to_string()
}

fn print_human(e: &Explained, figures: Option<&Figures>) {
    let who = if e.customer.is_empty() {
        format!("merchant {}", e.merchant)
    } else {
        format!("customer {} at merchant {}", e.customer, e.merchant)
    };
    println!("detection   {} ({}): {who}; stream {}, shard {}", e.pattern, e.pattern_id, e.stream, e.shard);
    println!("chunk       {} (detected after it, at {})", e.chunk, time_text(e.detected_at_ms));
    match &e.file {
        Some(file) => println!(
            "file        {}/part-00000.csv, row {} ({})",
            file.name,
            file.row.map_or_else(|| "?".to_owned(), |r| r.to_string()),
            if file.written { "written" } else { "not written yet" }
        ),
        None => println!("file        none yet: the detection waits for its output file"),
    }
    match figures {
        Some(f) => {
            let mut parts = Vec::new();
            if let Some(n) = f.pair_txns {
                parts.push(format!("n(c,m) {n}"));
            }
            if let Some(sum) = &f.pair_amount {
                parts.push(format!("S(c,m) {sum}"));
            }
            parts.push(format!(
                "N(m) {}, {} customers, F(m) {}, M(m) {}",
                f.merchant_txns, f.merchant_customers, f.female_customers, f.male_customers
            ));
            if let (Some(k), Some(cut)) = (f.k, f.count_cutoff) {
                parts.push(format!("k {k}, count cut-off {cut}"));
            }
            if let (Some(j), Some((sum, count))) = (f.j, &f.weight_cutoff) {
                parts.push(format!("j {j}, weight cut-off {sum} / {count}"));
            }
            println!("figures     {}", parts.join("; "));
        }
        None => println!("figures     none stored with this detection"),
    }
    let mut label = format!("{:<12}", e.pattern);
    for check in &e.checks {
        let verdict = if check.met { "met" } else { "NOT MET" };
        println!("{label}{verdict}: {}", check.text);
        label = " ".repeat(12);
    }
    if e.checks.iter().any(|c| !c.met) {
        println!(
            "            (a condition not met under the current settings: the thresholds may have changed since)"
        );
    }
}

/// Runs `txp explain`.
pub fn run(args: &ExplainArgs, settings: &Settings) -> Result<Outcome, Error> {
    let pattern = args.pattern;
    let customer = match (pattern, &args.customer) {
        (Pattern::DeiNeeded, None) => String::new(),
        (Pattern::DeiNeeded, Some(_)) => {
            return Err(Error::usage("DEI-NEEDED is a pattern of a merchant: it has no customer")
                .hint("leave out --customer: txp explain --pattern DEI-NEEDED --merchant ID"));
        }
        (_, Some(customer)) => customer.clone(),
        (_, None) => {
            return Err(Error::usage(format!("{pattern} is a pattern of a customer at a merchant: --customer is required"))
                .hint(format!("txp explain --pattern {pattern} --customer ID --merchant ID (the ids of an output file's row)")));
        }
    };
    let (stream, found) = runtime()?.block_on(async {
        let db = connect(settings).await?;
        let (_signal, never) = txp_consumer::shutdown::channel();
        let Some(chosen) = super::with_stream(settings, &db, false, never).await? else {
            return Ok((settings.stream.clone(), None));
        };
        let stream = chosen.stream;
        let known = known_streams(&db).await.map_err(|e| db_error(&e))?;
        if !known.contains(&stream) {
            return Err(Error::usage(format!("there is no stream `{stream}` in this database"))
                .hint(streams_hint(&known)));
        }
        let Some(row) =
            find(&db, &stream, pattern, &customer, &args.merchant).await.map_err(|e| db_error(&e))?
        else {
            return Ok((stream, None));
        };
        let file = match row.file_id {
            Some(id) => output_file::Entity::find_by_id(id).one(&db).await.map_err(|e| db_error(&e))?,
            None => None,
        };
        Ok((stream, Some((row, file))))
    })?;
    let Some((row, file)) = found else {
        let who = if customer.is_empty() {
            format!("merchant {}", args.merchant)
        } else {
            format!("customer {} at merchant {}", customer, args.merchant)
        };
        #[allow(clippy::print_stderr, reason = "a lookup that finds nothing says so on stderr, exit 1")]
        {
            eprintln!(
                "error: no {pattern} detection of {who} in stream {stream}\n  hint: check the ids (an output file's customerName and MerchantId) and the pattern; `txp status` shows each stream's detections"
            );
        }
        return Ok(Outcome::NotFound);
    };
    let figures: Option<Figures> = row.figures.as_deref().and_then(|text| serde_json::from_str(text).ok());
    let explained = Explained {
        stream: row.stream.clone(),
        pattern: pattern.action_type(),
        pattern_id: pattern.id(),
        customer: row.customer.clone(),
        merchant: row.merchant.clone(),
        shard: row.shard,
        chunk: row.chunk_index,
        detected_at_ms: row.detected_at_ms,
        file: row.file_id.map(|id| FileRef {
            id,
            name: file.as_ref().map_or_else(|| format!("(output file {id} not found)"), |f| f.name.clone()),
            row: row.file_row,
            written: file.as_ref().is_some_and(|f| f.written_at_ms.is_some()),
        }),
        figures: row.figures.as_deref().and_then(|text| serde_json::from_str(text).ok()),
        checks: figures.as_ref().map(|f| checks(pattern, f, &settings.thresholds)).unwrap_or_default(),
    };
    if args.json {
        let text = serde_json::to_string_pretty(&explained)
            .map_err(|e| Error::usage(format!("cannot write the explanation as JSON: {e}")))?;
        println!("{text}");
    } else {
        print_human(&explained, figures.as_ref());
    }
    Ok(Outcome::Success)
}
