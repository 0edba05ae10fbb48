//! Fault injection for the trap-recovery tests, compiled only with the `fault-injection` feature
//! (test builds): `KINESIS_FAULT_TRAP_AFTER_PUTS=N` makes the instance running when the N-th
//! PutRecords answer arrives trap at its next epoch check, once per process. Without the
//! feature nothing here reads the environment and [`trap_after_puts`] is always `None`.

use wasmtime::Engine;

/// The answer after which to trap, if the fault is switched on.
#[cfg(feature = "fault-injection")]
pub fn trap_after_puts() -> Option<usize> {
    static N: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("KINESIS_FAULT_TRAP_AFTER_PUTS")
            .ok()
            .and_then(|v| v.parse().ok())
    })
}

/// The answer after which to trap: never, in a build without fault injection.
#[cfg(not(feature = "fault-injection"))]
pub fn trap_after_puts() -> Option<usize> {
    None
}

/// A PutRecords answer arrived: trap the instance if this is the chosen one.
pub fn after_put(engine: &Engine) {
    static ANSWERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = ANSWERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if Some(n) == trap_after_puts() {
        engine.increment_epoch();
    }
}
