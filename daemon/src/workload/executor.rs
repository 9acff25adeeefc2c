//! The node's [`Executor`]: the p2p layer hands `Execute` jobs to a [`WorkloadRuntime`]
//! with the network's limits (module, input and output caps of the workload protocol).

use dsdn_p2p::workload::{ExecOutput, Executor};
use dsdn_protocols::workload::{MAX_INPUT_BYTES, MAX_MODULE_BYTES, MAX_OUTPUT_BYTES};

use super::{Limits, RuntimeError, WorkloadRuntime};

/// The limits of workloads received over the network: [`Limits::DEFAULT`] (10 billion fuel,
/// 64 MiB memory, 10 s wall time, a checkpoint every 1 billion fuel) with the protocol's
/// caps on module (4 MiB), input and output (1 MiB each). Re-execution
/// (`dsdn-agent receipt verify --reexecute`) must use the same limits to get the same
/// commitment.
pub const NETWORK_LIMITS: Limits = Limits {
    max_module_bytes: MAX_MODULE_BYTES,
    max_input_bytes: MAX_INPUT_BYTES,
    max_output_bytes: MAX_OUTPUT_BYTES,
    ..Limits::DEFAULT
};

/// A [`WorkloadRuntime`] as the node's [`Executor`].
pub struct RuntimeExecutor {
    runtime: WorkloadRuntime,
}

impl RuntimeExecutor {
    /// A runtime with [`NETWORK_LIMITS`].
    ///
    /// # Errors
    /// [`RuntimeError`] when the engine cannot be built.
    pub fn new() -> Result<Self, RuntimeError> {
        Ok(RuntimeExecutor {
            runtime: WorkloadRuntime::new(NETWORK_LIMITS)?,
        })
    }
}

impl Executor for RuntimeExecutor {
    fn execute(&self, module: &[u8], input: &[u8]) -> Result<ExecOutput, String> {
        let e = self.runtime.run(module, input).map_err(|e| e.to_string())?;
        Ok(ExecOutput {
            output: e.output,
            commitment: e.commitment,
            usage: e.usage,
        })
    }
}
