//! A sink that consumes everything (benchmarks, dry runs).

use revoice_pipeline::{Port, Ports, Stage, StageBody, StageIo};

pub struct NullSink {
    input: Port,
}

impl NullSink {
    pub fn new(input: Port) -> Self {
        Self { input }
    }
}

impl Stage for NullSink {
    fn name(&self) -> String {
        "null".into()
    }

    fn ports(&self) -> Ports {
        Ports { input: self.input, output: Port::None }
    }

    fn start(self: Box<Self>, mut io: StageIo) -> StageBody {
        StageBody::Async(Box::pin(async move {
            while io.recv().await.is_some() {}
            Ok(())
        }))
    }
}
