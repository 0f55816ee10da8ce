//! The one `both_backends!` of every crate's suites: registers a test once per backend and
//! tells the test (and whatever it builds, through [`current_backend`]) which one it runs on.

use std::future::Future;

use super::Backend;

tokio::task_local! {
    /// The backend of the test running in this task, set by `both_backends!`.
    static CURRENT_BACKEND: Backend;
}

/// The backend the current test runs on: the one `both_backends!` set, SQLite outside it.
/// Test fixtures that build a store without being handed a backend (a test app, a test
/// environment) ask this.
pub fn current_backend() -> Backend {
    CURRENT_BACKEND
        .try_with(|backend| *backend)
        .unwrap_or(Backend::Sqlite)
}

/// A test body `both_backends!` can run: an `async fn name()` that asks
/// [`current_backend`], or an `async fn name(backend: Backend)`. `Args` only tells the two
/// apart.
pub trait BackendTest<Args> {
    type Run: Future<Output = ()>;

    fn start(self, backend: Backend) -> Self::Run;
}

impl<F, Fut> BackendTest<()> for F
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    type Run = Fut;

    fn start(self, _backend: Backend) -> Fut {
        self()
    }
}

impl<F, Fut> BackendTest<(Backend,)> for F
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    type Run = Fut;

    fn start(self, backend: Backend) -> Fut {
        self(backend)
    }
}

/// Runs `test` on `backend`, with [`current_backend`] answering `backend` inside it.
pub async fn run_on_backend<Args>(backend: Backend, test: impl BackendTest<Args>) {
    CURRENT_BACKEND.scope(backend, test.start(backend)).await;
}

/// Runs the async test function `$name` once per backend, as the tests `$name::sqlite` and
/// `$name::postgres` (the PostgreSQL one fails, never skips, when the server is not
/// reachable). `$name` is `async fn $name(backend: Backend)` or `async fn $name()` (which
/// reads [`current_backend`]). Written next to the function it registers; a function that is
/// never registered is dead code, which the lints report.
///
/// The runtime is multi-threaded (two workers) unless asked otherwise:
/// `both_backends!(name, current_thread)` or `both_backends!(name, (flavor = "…", …))`
/// with any `#[tokio::test]` arguments.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        $crate::both_backends!($name, (flavor = "multi_thread", worker_threads = 2));
    };
    ($name:ident, current_thread) => {
        $crate::both_backends!($name, (flavor = "current_thread"));
    };
    ($name:ident, ($($runtime:tt)*)) => {
        mod $name {
            #[tokio::test($($runtime)*)]
            async fn sqlite() {
                $crate::testing::run_on_backend($crate::testing::Backend::Sqlite, super::$name)
                    .await
            }

            #[tokio::test($($runtime)*)]
            async fn postgres() {
                $crate::testing::run_on_backend($crate::testing::Backend::Postgres, super::$name)
                    .await
            }
        }
    };
}
