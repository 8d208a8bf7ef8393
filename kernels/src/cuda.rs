//! The GPU versions of the kernels: CUDA C (`cuda/kernels.cu`) compiled at run time by
//! NVRTC through cudarc, so building needs no CUDA compiler, only running needs the driver
//! (`libcuda.so`) and NVRTC (`libnvrtc.so`). Each method computes what its CPU twin
//! computes (see the twin's module documentation); the tests and the device check hold
//! them to a relative error of 1e-5.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use crate::KernelError;
use crate::loudness::{block_geometry, gated_loudness, k_filter};
use crate::resample::ResamplePlan;
use crate::stretch::StretchPlan;

const SOURCE: &str = include_str!("cuda/kernels.cu");
const SEARCH_THREADS: u32 = 256;
const THREADS: u32 = 256;

fn cuda(e: impl std::fmt::Display) -> KernelError {
    KernelError::Cuda(e.to_string())
}

fn library_present(names: &[&str]) -> bool {
    // SAFETY: loading the NVIDIA libraries runs only their initialisers, which have no
    // preconditions; the handle is dropped at once.
    names.iter().any(|&name| unsafe { libloading::Library::new(name) }.is_ok())
}

/// Whether this machine has the NVIDIA driver library (checked without touching CUDA).
pub fn driver_present() -> bool {
    library_present(&["libcuda.so.1", "libcuda.so"])
}

fn grid(n: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: ((n as u32).div_ceil(THREADS).max(1), 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

/// Compiles the kernels' CUDA C to PTX for `compute_{arch}` (e.g. 90 for an H100). Needs
/// only NVRTC, no GPU: the device check uses it to validate the source anywhere.
pub fn compile(arch: u32) -> Result<cudarc::nvrtc::Ptx, KernelError> {
    if !library_present(&["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"]) {
        return Err(KernelError::NoNvrtc);
    }
    let options = CompileOptions { fmad: Some(false), options: vec![format!("--gpu-architecture=compute_{arch}")], ..Default::default() };
    compile_ptx_with_opts(SOURCE, options).map_err(|e| KernelError::Compile(e.to_string()))
}

/// GPU 0 as the driver describes it, without compiling any kernel: for deciding where
/// models run. Holds the device's primary context, so the libraries that run the models
/// (whisper.cpp, candle, ONNX Runtime) find it already made.
pub struct DeviceInfo {
    pub name: String,
    pub free: u64,
    pub total: u64,
    _ctx: Arc<CudaContext>,
}

impl std::fmt::Debug for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceInfo").field("name", &self.name).field("free", &self.free).field("total", &self.total).finish()
    }
}

impl DeviceInfo {
    /// Free device memory now, in bytes.
    pub fn free_now(&self) -> Result<u64, KernelError> {
        self._ctx.mem_get_info().map(|(free, _)| free as u64).map_err(cuda)
    }
}

/// Opens GPU 0 and reads its name and memory. [`KernelError::NoDriver`] or
/// [`KernelError::NoDevice`] (not a panic) on machines without one.
pub fn probe() -> Result<DeviceInfo, KernelError> {
    if !driver_present() {
        return Err(KernelError::NoDriver);
    }
    if CudaContext::device_count().map_err(cuda)? < 1 {
        return Err(KernelError::NoDevice);
    }
    let ctx = CudaContext::new(0).map_err(cuda)?;
    let (free, total) = ctx.mem_get_info().map_err(cuda)?;
    let name = ctx.name().unwrap_or_else(|e| format!("unknown ({e})"));
    Ok(DeviceInfo { name, free: free as u64, total: total as u64, _ctx: ctx })
}

/// A GPU with the kernels compiled and loaded.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    wsola_search: CudaFunction,
    wsola_ola: CudaFunction,
    resample: CudaFunction,
    block_energy: CudaFunction,
    mix: CudaFunction,
}

impl Gpu {
    /// Opens GPU 0 and compiles the kernels for it. Fails with [`KernelError::NoDriver`] or
    /// [`KernelError::NoNvrtc`] (not a panic) on machines without them.
    pub fn new() -> Result<Self, KernelError> {
        if !driver_present() {
            return Err(KernelError::NoDriver);
        }
        if CudaContext::device_count().map_err(cuda)? < 1 {
            return Err(KernelError::NoDevice);
        }
        let ctx = CudaContext::new(0).map_err(cuda)?;
        let (major, minor) = ctx.compute_capability().map_err(cuda)?;
        let ptx = compile((major * 10 + minor) as u32)?;
        let module = ctx.load_module(ptx).map_err(cuda)?;
        let f = |name: &str| module.load_function(name).map_err(cuda);
        Ok(Self {
            stream: ctx.default_stream(),
            wsola_search: f("wsola_search")?,
            wsola_ola: f("wsola_ola")?,
            resample: f("resample_poly")?,
            block_energy: f("block_energy")?,
            mix: f("mix2")?,
            ctx,
        })
    }

    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> String {
        self.ctx.name().unwrap_or_else(|e| format!("unknown ({e})"))
    }

    /// (free, total) device memory in bytes, as the driver reports it.
    pub fn memory(&self) -> Result<(usize, usize), KernelError> {
        self.ctx.mem_get_info().map_err(cuda)
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<(), KernelError> {
        self.stream.synchronize().map_err(cuda)
    }

    fn upload<T: DeviceRepr + Default + Clone>(&self, data: &[T]) -> Result<CudaSlice<T>, KernelError> {
        // Zero-length device buffers are not allowed; kernels never read past `len`.
        if data.is_empty() { self.stream.clone_htod(&[T::default()]) } else { self.stream.clone_htod(data) }.map_err(cuda)
    }

    fn output<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>, KernelError> {
        self.stream.alloc_zeros::<T>(len.max(1)).map_err(cuda)
    }

    fn download<T: DeviceRepr>(&self, buf: &CudaSlice<T>, len: usize) -> Result<Vec<T>, KernelError> {
        let mut all = self.stream.clone_dtoh(buf).map_err(cuda)?;
        all.truncate(len);
        Ok(all)
    }

    /// GPU twin of [`crate::time_stretch`].
    pub fn time_stretch(&self, input: &[f32], ratio: f64, rate: u32) -> Result<Vec<f32>, KernelError> {
        let plan = StretchPlan::new(input.len(), ratio, rate)?;
        if plan.output_len == 0 {
            return Ok(Vec::new());
        }
        let p = plan.params;
        let x = self.upload(input)?;
        let nominal = self.upload(&plan.nominal)?;
        let window = self.upload(&plan.window)?;
        let mut chosen = self.output::<i64>(plan.frames())?;
        let mut out = self.output::<f32>(plan.output_len)?;
        let (n, frames, hop, win, tol, out_len) = (input.len() as i64, plan.frames() as i32, p.hop as i32, p.win as i32, p.tolerance as i32, plan.output_len as i64);
        let search = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (SEARCH_THREADS, 1, 1), shared_mem_bytes: SEARCH_THREADS * 12 };
        // SAFETY: argument types and order match the kernel's signature; every buffer holds
        // at least the lengths passed with it.
        unsafe {
            self.stream
                .launch_builder(&self.wsola_search)
                .arg(&x).arg(&n).arg(&nominal).arg(&frames).arg(&hop).arg(&win).arg(&tol).arg(&mut chosen)
                .launch(search)
                .map_err(cuda)?;
            self.stream
                .launch_builder(&self.wsola_ola)
                .arg(&x).arg(&n).arg(&chosen).arg(&frames).arg(&hop).arg(&win).arg(&window).arg(&mut out).arg(&out_len)
                .launch(grid(plan.output_len))
                .map_err(cuda)?;
        }
        self.download(&out, plan.output_len)
    }

    /// GPU twin of [`crate::resample`].
    pub fn resample(&self, input: &[f32], in_rate: u32, out_rate: u32) -> Result<Vec<f32>, KernelError> {
        if in_rate == out_rate {
            return crate::resample(input, in_rate, out_rate);
        }
        let plan = ResamplePlan::new(input.len(), in_rate, out_rate)?;
        if plan.output_len == 0 {
            return Ok(Vec::new());
        }
        let x = self.upload(input)?;
        let table = self.upload(&plan.table)?;
        let mut out = self.output::<f32>(plan.output_len)?;
        let (n, taps, phases, ir, or, out_len) = (input.len() as i64, plan.taps as i32, plan.phases as u64, in_rate as u64, out_rate as u64, plan.output_len as i64);
        // SAFETY: as in `time_stretch`.
        unsafe {
            self.stream
                .launch_builder(&self.resample)
                .arg(&x).arg(&n).arg(&table).arg(&taps).arg(&phases).arg(&ir).arg(&or).arg(&mut out).arg(&out_len)
                .launch(grid(plan.output_len))
                .map_err(cuda)?;
        }
        self.download(&out, plan.output_len)
    }

    /// GPU twin of [`crate::loudness::block_energies`].
    pub fn block_energies(&self, weighted: &[f64], block: usize, step: usize) -> Result<Vec<f64>, KernelError> {
        if weighted.len() < block || block == 0 || step == 0 {
            return Ok(Vec::new());
        }
        let count = (weighted.len() - block) / step + 1;
        let y = self.upload(weighted)?;
        let mut z = self.output::<f64>(count)?;
        let (b, s, c) = (block as i64, step as i64, count as i64);
        // SAFETY: as in `time_stretch`.
        unsafe {
            self.stream.launch_builder(&self.block_energy).arg(&y).arg(&b).arg(&s).arg(&c).arg(&mut z).launch(grid(count)).map_err(cuda)?;
        }
        self.download(&z, count)
    }

    /// GPU twin of [`crate::integrated_loudness`]: K-filter on the CPU (an IIR is
    /// sequential), block mean squares on the GPU, gating on the CPU.
    pub fn integrated_loudness(&self, input: &[f32], rate: u32) -> Result<f64, KernelError> {
        crate::check_rate(rate)?;
        let (block, step) = block_geometry(rate);
        Ok(gated_loudness(&self.block_energies(&k_filter(input, rate), block, step)?))
    }

    /// GPU twin of [`crate::mix`].
    pub fn mix(&self, a: &[f32], gain_a: f32, b: &[f32], gain_b: f32) -> Result<Vec<f32>, KernelError> {
        let len = a.len().max(b.len());
        if len == 0 {
            return Ok(Vec::new());
        }
        let (da, db) = (self.upload(a)?, self.upload(b)?);
        let mut out = self.output::<f32>(len)?;
        let (na, nb, n) = (a.len() as i64, b.len() as i64, len as i64);
        // SAFETY: as in `time_stretch`.
        unsafe {
            self.stream
                .launch_builder(&self.mix)
                .arg(&da).arg(&na).arg(&gain_a).arg(&db).arg(&nb).arg(&gain_b).arg(&mut out).arg(&n)
                .launch(grid(len))
                .map_err(cuda)?;
        }
        self.download(&out, len)
    }

    /// GPU twin of [`crate::gain`].
    pub fn gain(&self, x: &[f32], db: f64) -> Result<Vec<f32>, KernelError> {
        self.mix(x, 10f64.powf(db / 20.0) as f32, &[], 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a machine without a GPU the API answers with an error, never a panic; on one
    /// with a GPU the kernels match their twins.
    #[test]
    fn no_gpu_is_an_error_and_a_gpu_matches_the_twins() {
        match Gpu::new() {
            Err(e @ (KernelError::NoDriver | KernelError::NoNvrtc | KernelError::NoDevice)) => {
                assert!(!e.to_string().is_empty());
            }
            Err(e) => panic!("unexpected GPU error: {e}"),
            Ok(gpu) => {
                let x = crate::test_signals::sine(173.0, 0.5, 16_000, 2.0);
                let y = gpu.time_stretch(&x, 1.15, 16_000).unwrap();
                assert!(crate::max_relative_error(&crate::time_stretch(&x, 1.15, 16_000).unwrap(), &y) <= 1e-5);
                let r = gpu.resample(&x, 16_000, 22_050).unwrap();
                assert!(crate::max_relative_error(&crate::resample(&x, 16_000, 22_050).unwrap(), &r) <= 1e-5);
            }
        }
    }
}
