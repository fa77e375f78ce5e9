//! `txp generate`: writes a BankSim-shaped dataset. Files are written under temporary names and
//! renamed at the end, so an interrupted run never leaves a truncated file that looks complete.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use txp_core::generate::{GenerateOptions, WeightMode, generate};

use crate::Outcome;
use crate::cli::{GenerateArgs, Weights};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::progress::Ui;

/// The transactions file's name in the output folder.
pub const TRANSACTIONS_FILE: &str = "transactions.csv";
/// The importance file's name in the output folder.
pub const IMPORTANCE_FILE: &str = "CustomerImportance.csv";

fn create(path: &Path) -> Result<BufWriter<File>, Error> {
    File::create(path).map(|f| BufWriter::with_capacity(1 << 20, f)).map_err(|e| {
        Error::usage(format!("cannot write {}: {e}", path.display()))
            .hint("check that the folder is writable")
    })
}

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Generates the dataset into `args.out`.
pub fn run(args: &GenerateArgs, ui: Ui, interrupt: &Interrupt) -> Result<Outcome, Error> {
    if args.rows == 0 {
        return Err(Error::usage("--rows must be at least 1"));
    }
    fs::create_dir_all(&args.out).map_err(|e| {
        Error::usage(format!("cannot create {}: {e}", args.out.display()))
            .hint("choose a writable --out folder")
    })?;
    let transactions = args.out.join(TRANSACTIONS_FILE);
    let importance = args.out.join(IMPORTANCE_FILE);
    let (tx_tmp, imp_tmp) = (temporary(&transactions), temporary(&importance));
    let started = Instant::now();
    let options = GenerateOptions {
        rows: args.rows,
        seed: args.seed,
        weights: match args.weights {
            Weights::Amount => WeightMode::Amount,
            Weights::Independent => WeightMode::Independent,
        },
    };
    let bar = ui.bar(args.rows, "generating", "rows");
    let result = generate(create(&tx_tmp)?, create(&imp_tmp)?, &options, &mut |rows| bar.inc(rows));
    bar.finish_and_clear();
    let stats = match result.map_err(|e| Error::usage(format!("cannot write the dataset: {e}"))) {
        Ok(stats) => stats,
        Err(e) => {
            let _ = fs::remove_file(&tx_tmp);
            let _ = fs::remove_file(&imp_tmp);
            return Err(e);
        }
    };
    if let Err(e) = interrupt.check() {
        let _ = fs::remove_file(&tx_tmp);
        let _ = fs::remove_file(&imp_tmp);
        return Err(e);
    }
    for (from, to) in [(&tx_tmp, &transactions), (&imp_tmp, &importance)] {
        fs::rename(from, to)
            .map_err(|e| Error::usage(format!("cannot move {} to {}: {e}", from.display(), to.display())))?;
    }
    println!(
        "wrote {} transactions ({} customers, {} merchants, {} pairs; seed {}) to {} and {} in {:.1} s",
        thousands(stats.rows),
        thousands(stats.customers),
        thousands(stats.merchants),
        thousands(stats.pairs),
        args.seed,
        transactions.display(),
        importance.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(Outcome::Success)
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
