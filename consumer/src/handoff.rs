//! Committed chunks handed from the consumers of one process (`txp run`, `txp demo`) to its
//! detectors: a wake-up at each commit, so that a waiting detector folds at once instead of at
//! its next poll, and (with one shard) the committed aggregate itself, so that the detector need
//! not read back the rows the consumer has just written. What is handed over is what was
//! committed, in the form the database gives back; a chunk not found here is read from the
//! database, as a detector in a process of its own always does. Such a detector, on
//! PostgreSQL, is woken by [`listen_for_commits`]: every commit announces its stream on
//! [`COMMITS_CHANNEL`] (`pg_notify`, delivered when the transaction commits).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use txp_core::aggregate::ChunkAggregate;

/// Aggregates kept for the detector at most. When consumers run further ahead (a catch-up), the
/// earliest are kept (the detector needs them next) and later ones are read from the database.
pub const CAPACITY: usize = 16;

/// Aggregates kept for the detector, by chunk index.
type Kept = Arc<Mutex<BTreeMap<u64, ChunkAggregate>>>;

/// The consumers' side and the detectors' side of one process's handoff (clones share it).
#[derive(Debug, Clone)]
pub struct Handoff {
    commits: Arc<watch::Sender<u64>>,
    /// The stream whose aggregates are handed over, and those kept; `None` when aggregates are
    /// not handed over (several shards share each chunk).
    aggregates: Option<(String, Kept)>,
}

impl Handoff {
    /// A handoff; with `aggregates_of` (the process runs one detector shard, of that stream)
    /// the aggregates of that stream are handed over too. Other streams' messages, which a
    /// consumer may also take, are only announced.
    pub fn new(aggregates_of: Option<&str>) -> Self {
        let (commits, _) = watch::channel(0);
        Self {
            commits: Arc::new(commits),
            aggregates: aggregates_of
                .map(|stream| (stream.to_owned(), Arc::new(Mutex::new(BTreeMap::new())))),
        }
    }

    /// A chunk is committed: keep its aggregate (as read back: no quarantined rows) if there is
    /// room, and wake the detectors.
    pub fn committed(&self, stream: &str, aggregate: ChunkAggregate) {
        if let Some((kept, aggregates)) = &self.aggregates
            && kept == stream
        {
            let mut aggregates = aggregates.lock().unwrap_or_else(PoisonError::into_inner);
            if aggregates.len() < CAPACITY {
                let aggregate = ChunkAggregate { rejected: Vec::new(), ..aggregate };
                aggregates.insert(aggregate.index, aggregate);
            }
        }
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A detector's wake-up: changes at every commit.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Takes a committed chunk's aggregate if it was kept, dropping earlier ones (folded
    /// already: a redelivery commits nothing, so none can be needed again).
    pub fn take(&self, stream: &str, chunk: u64) -> Option<ChunkAggregate> {
        let (kept, aggregates) = self.aggregates.as_ref()?;
        if kept != stream {
            return None;
        }
        let mut aggregates = aggregates.lock().unwrap_or_else(PoisonError::into_inner);
        aggregates.retain(|c, _| *c >= chunk);
        aggregates.remove(&chunk)
    }
}

/// The PostgreSQL channel on which each chunk commit announces its stream.
pub const COMMITS_CHANNEL: &str = "txp_chunk_committed";

/// PostgreSQL: a wake-up that changes at each commit of `stream`, whatever process commits it,
/// for a detector without consumers in its process. `None` when the listener cannot start
/// (the detector then polls, as it does whenever the listener's connection is lost).
pub async fn listen_for_commits(database_url: &str, stream: &str) -> Option<watch::Receiver<u64>> {
    use sea_orm::sqlx::postgres::PgListener;
    let listener = async {
        let mut listener = PgListener::connect(database_url).await?;
        listener.listen(COMMITS_CHANNEL).await?;
        Ok::<PgListener, sea_orm::sqlx::Error>(listener)
    };
    let mut listener = match listener.await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for commits; the detector polls");
            return None;
        }
    };
    let (commits, woken) = watch::channel(0u64);
    let stream = stream.to_owned();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = commits.closed() => break,
                notification = listener.recv() => match notification {
                    Ok(n) if n.payload() == stream => commits.send_modify(|c| *c = c.wrapping_add(1)),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "stopped listening for commits; the detector polls");
                        break;
                    }
                },
            }
        }
    });
    Some(woken)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn aggregate(index: u64) -> ChunkAggregate {
        ChunkAggregate::from_part(index, "part-00000.csv", b"step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud\n0,'C1','2','F','28007','M1','28007','es_food',10.00,0\n").unwrap()
    }

    #[test]
    fn a_kept_aggregate_is_taken_once_and_earlier_ones_are_dropped() {
        let handoff = Handoff::new(Some("s"));
        let commits = handoff.commits();
        handoff.committed("other", aggregate(0));
        assert!(commits.has_changed().unwrap(), "another stream's commit wakes the detector");
        for i in 0..3 {
            handoff.committed("s", aggregate(i));
        }
        assert!(handoff.take("other", 0).is_none(), "only the detector's stream is kept");
        assert_eq!(handoff.take("s", 1).unwrap().index, 1);
        assert!(handoff.take("s", 1).is_none());
        assert!(handoff.take("s", 0).is_none(), "chunk 0 was dropped when chunk 1 was taken");
        let taken = handoff.take("s", 2).unwrap();
        assert_eq!(taken.pairs, aggregate(2).pairs);
        assert!(taken.rejected.is_empty());
    }

    #[test]
    fn capacity_keeps_the_earliest_and_several_shards_keep_nothing() {
        let handoff = Handoff::new(Some("s"));
        for i in 0..(CAPACITY as u64 + 4) {
            handoff.committed("s", aggregate(i));
        }
        assert!(handoff.take("s", CAPACITY as u64).is_none());
        assert!(handoff.take("s", CAPACITY as u64 - 1).is_none(), "dropped as earlier than the last take");
        let handoff = Handoff::new(Some("s"));
        for i in 0..(CAPACITY as u64 + 4) {
            handoff.committed("s", aggregate(i));
        }
        assert!(handoff.take("s", 0).is_some());
        let shared = Handoff::new(None);
        let commits = shared.commits();
        shared.committed("s", aggregate(0));
        assert!(commits.has_changed().unwrap());
        assert!(shared.take("s", 0).is_none());
    }
}
