//! How the service's tasks touch the ledger: under the work lock (so that a command run
//! meanwhile waits for it), in the blocking pool (SQLite and the spool block).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::Ledger;
use crate::system::failure::{Class, LocalFailure};

/// The ledger could not be had.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", dir.display())]
pub struct LockError {
    pub dir: PathBuf,
    pub problem: LockProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum LockProblem {
    #[error("work lock: {0}")]
    Lock(std::io::Error),
    #[error("the ledger was left inconsistent by a panic")]
    Poisoned,
    #[error("ledger task: {0}")]
    Task(tokio::task::JoinError),
}

impl From<LockError> for LocalFailure {
    fn from(e: LockError) -> Self {
        LocalFailure::new(Class::Io, &e.dir, &e.problem)
    }
}

/// Runs `f` on the ledger holding the work lock (blocking: for the blocking pool).
pub fn locked<T, E: From<LockError>>(
    ledger: &Mutex<Ledger>,
    dir: &Path,
    f: impl FnOnce(&mut Ledger, &Path) -> Result<T, E>,
) -> Result<T, E> {
    let fail = |problem| LockError {
        dir: dir.to_path_buf(),
        problem,
    };
    let _work =
        crate::system::state::WorkLock::take(dir).map_err(|e| fail(LockProblem::Lock(e)))?;
    let mut ledger = ledger.lock().map_err(|_| fail(LockProblem::Poisoned))?;
    f(&mut ledger, dir)
}

/// Runs `f` on the ledger in the blocking pool, holding the work lock.
pub async fn with_ledger<T, E>(
    ledger: &Arc<Mutex<Ledger>>,
    dir: &Path,
    f: impl FnOnce(&mut Ledger, &Path) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<LockError> + Send + 'static,
{
    let (ledger, owned) = (Arc::clone(ledger), dir.to_path_buf());
    tokio::task::spawn_blocking(move || locked(&ledger, &owned, f))
        .await
        .map_err(|e| {
            E::from(LockError {
                dir: dir.to_path_buf(),
                problem: LockProblem::Task(e),
            })
        })?
}
