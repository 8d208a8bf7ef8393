//! Sound cards through cpal: listing, choosing by name or index, and the streams whose
//! callbacks feed the capture ring and drain the playback ring.
//!
//! The callbacks only touch the rings (no lock, no allocation, no panic); samples of
//! other types are converted through a buffer on the stack. A stream error (a device
//! unplugged) is recorded once and the session ends with a message naming the device.

use std::sync::{Arc, OnceLock};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use revoice_pipeline::AudioFormat;

use super::LiveError;
use super::endpoint::{CaptureIn, PlaybackOut};

/// One device as `revoice devices` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeviceInfo {
    pub index: usize,
    pub direction: &'static str,
    pub name: String,
    pub default: bool,
    /// "48000 Hz, 2 ch", or why the device cannot be used.
    pub config: String,
}

fn name_of(d: &cpal::Device) -> String {
    d.description().map(|x| x.name().to_string()).unwrap_or_else(|e| format!("(unnamed: {e})"))
}

/// Every input and output device of the default host.
pub fn list() -> (String, Vec<DeviceInfo>) {
    let host = cpal::default_host();
    let mut devices = Vec::new();
    let default_in = host.default_input_device().map(|d| name_of(&d));
    let default_out = host.default_output_device().map(|d| name_of(&d));
    if let Ok(inputs) = host.input_devices() {
        for (index, d) in inputs.enumerate() {
            let name = name_of(&d);
            let config = d.default_input_config().map_or_else(|e| format!("unusable: {e}"), |c| format!("{} Hz, {} ch", c.sample_rate(), c.channels()));
            devices.push(DeviceInfo { index, direction: "input", default: default_in.as_deref() == Some(name.as_str()), name, config });
        }
    }
    if let Ok(outputs) = host.output_devices() {
        for (index, d) in outputs.enumerate() {
            let name = name_of(&d);
            let config = d.default_output_config().map_or_else(|e| format!("unusable: {e}"), |c| format!("{} Hz, {} ch", c.sample_rate(), c.channels()));
            devices.push(DeviceInfo { index, direction: "output", default: default_out.as_deref() == Some(name.as_str()), name, config });
        }
    }
    (host.id().name().to_string(), devices)
}

/// The device `spec` names (an index from `revoice devices`, or part of a name, any
/// case), or the default one.
fn find(spec: Option<&str>, input: bool) -> Result<(cpal::Device, String), LiveError> {
    let host = cpal::default_host();
    let direction = if input { "input" } else { "output" };
    let none = || LiveError::Device(format!("no {direction} device found; `revoice devices` lists what is there, and --input-file/--output-file work without a sound card"));
    let Some(spec) = spec else {
        let d = if input { host.default_input_device() } else { host.default_output_device() }.ok_or_else(none)?;
        let name = name_of(&d);
        return Ok((d, name));
    };
    let all: Vec<cpal::Device> = if input { host.input_devices().map(|i| i.collect()) } else { host.output_devices().map(|i| i.collect()) }
        .map_err(|e| LiveError::Device(format!("cannot list {direction} devices ({e}); `revoice devices` shows what the system offers")))?;
    let pick = match spec.parse::<usize>() {
        Ok(i) => all.into_iter().nth(i),
        Err(_) => all.into_iter().find(|d| name_of(d).to_lowercase().contains(&spec.to_lowercase())),
    };
    let d = pick.ok_or_else(|| LiveError::Device(format!("no {direction} device `{spec}`; `revoice devices` lists the names and indexes")))?;
    let name = name_of(&d);
    Ok((d, name))
}

/// Records the first error a stream reports.
#[derive(Clone, Default)]
pub struct DeviceWatch {
    error: Arc<OnceLock<LiveError>>,
}

impl DeviceWatch {
    /// The error that ended a device, once (later calls give `None`).
    pub fn take(&self) -> Option<LiveError> {
        self.error.get().map(|e| match e {
            LiveError::DeviceLost { direction, name, reason } => LiveError::DeviceLost { direction, name: name.clone(), reason: reason.clone() },
            other => LiveError::Device(other.to_string()),
        })
    }

    fn callback(&self, direction: &'static str, name: String) -> impl FnMut(cpal::Error) + Send + 'static {
        let error = self.error.clone();
        move |e: cpal::Error| {
            // Reroutes of the default device keep the stream alive.
            if e.kind() != cpal::ErrorKind::DeviceChanged {
                let _ = error.set(LiveError::DeviceLost { direction, name: name.clone(), reason: e.to_string() });
            }
        }
    }
}

/// A device chosen for a session, with the format it will run at.
pub struct ChosenDevice {
    device: cpal::Device,
    supported: cpal::SupportedStreamConfig,
    pub name: String,
    pub format: AudioFormat,
}

fn choose(spec: Option<&str>, input: bool) -> Result<ChosenDevice, LiveError> {
    let (device, name) = find(spec, input)?;
    let direction = if input { "input" } else { "output" };
    let supported = if input { device.default_input_config() } else { device.default_output_config() }
        .map_err(|e| LiveError::Device(format!("{direction} device `{name}` cannot be used: {e}")))?;
    let format = AudioFormat::new(supported.sample_rate(), supported.channels())
        .ok_or_else(|| LiveError::Device(format!("{direction} device `{name}` reports a zero sample rate or channel count")))?;
    Ok(ChosenDevice { device, supported, name, format })
}

/// The input device `spec` names (an index from `revoice devices`, or part of a name),
/// or the default one.
pub fn choose_input(spec: Option<&str>) -> Result<ChosenDevice, LiveError> {
    choose(spec, true)
}

/// The output device `spec` names, or the default one.
pub fn choose_output(spec: Option<&str>) -> Result<ChosenDevice, LiveError> {
    choose(spec, false)
}

/// Start capturing from `dev` into the capture ring.
pub fn start_input(dev: &ChosenDevice, tx: CaptureIn, watch: &DeviceWatch) -> Result<cpal::Stream, LiveError> {
    let name = &dev.name;
    let err = |e: cpal::Error| LiveError::Device(format!("input device `{name}`: {e}"));
    let config = dev.supported.config();
    let on_error = watch.callback("input", name.clone());
    let stream = match dev.supported.sample_format() {
        SampleFormat::F32 => input_stream::<f32>(&dev.device, config, tx, on_error),
        SampleFormat::I16 => input_stream::<i16>(&dev.device, config, tx, on_error),
        SampleFormat::I32 => input_stream::<i32>(&dev.device, config, tx, on_error),
        SampleFormat::U16 => input_stream::<u16>(&dev.device, config, tx, on_error),
        other => return Err(LiveError::Device(format!("input device `{name}`: unsupported sample format {other}"))),
    }
    .map_err(err)?;
    stream.play().map_err(err)?;
    tracing::info!(device = %name, format = %dev.format, "microphone open");
    Ok(stream)
}

/// Start playing the playback ring on `dev` (silence until speech is queued).
pub fn start_output(dev: &ChosenDevice, out: PlaybackOut, watch: &DeviceWatch) -> Result<cpal::Stream, LiveError> {
    let name = &dev.name;
    let err = |e: cpal::Error| LiveError::Device(format!("output device `{name}`: {e}"));
    let config = dev.supported.config();
    let on_error = watch.callback("output", name.clone());
    let stream = match dev.supported.sample_format() {
        SampleFormat::F32 => output_stream::<f32>(&dev.device, config, out, on_error),
        SampleFormat::I16 => output_stream::<i16>(&dev.device, config, out, on_error),
        SampleFormat::I32 => output_stream::<i32>(&dev.device, config, out, on_error),
        SampleFormat::U16 => output_stream::<u16>(&dev.device, config, out, on_error),
        other => return Err(LiveError::Device(format!("output device `{name}`: unsupported sample format {other}"))),
    }
    .map_err(err)?;
    stream.play().map_err(err)?;
    tracing::info!(device = %name, format = %dev.format, "speaker open");
    Ok(stream)
}

/// Samples converted per step on the callback's stack.
const STEP: usize = 512;

fn input_stream<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut tx: CaptureIn,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let mut scratch = [0.0f32; STEP];
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _| {
            for part in data.chunks(STEP) {
                for (s, x) in scratch.iter_mut().zip(part) {
                    *s = f32::from_sample_(*x);
                }
                tx.push(&scratch[..part.len()]);
            }
        },
        on_error,
        None,
    )
}

fn output_stream<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut out: PlaybackOut,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let mut scratch = [0.0f32; STEP];
    let step = STEP - STEP % out.channels().max(1);
    device.build_output_stream::<T, _, _>(
        config,
        move |data: &mut [T], _| {
            for part in data.chunks_mut(step) {
                let n = part.len();
                out.fill(&mut scratch[..n]);
                for (d, s) in part.iter_mut().zip(&scratch[..n]) {
                    *d = T::from_sample_(*s);
                }
            }
        },
        on_error,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_device_is_reported_once_with_its_name_and_reroutes_are_not() {
        let watch = DeviceWatch::default();
        let mut on_error = watch.callback("input", "USB mic".into());
        on_error(cpal::Error::new(cpal::ErrorKind::DeviceChanged));
        assert!(watch.take().is_none(), "a reroute keeps the stream alive");
        on_error(cpal::Error::new(cpal::ErrorKind::DeviceNotAvailable));
        on_error(cpal::Error::new(cpal::ErrorKind::DeviceBusy));
        let e = watch.take().expect("the loss is recorded");
        let text = e.to_string();
        assert!(matches!(e, LiveError::DeviceLost { direction: "input", .. }), "{text}");
        assert!(text.contains("USB mic") && text.contains("revoice devices"), "{text}");
    }

    #[test]
    fn an_unknown_device_name_says_where_to_look() {
        let Err(e) = choose_input(Some("no such device at all")) else { panic!("found a device that does not exist") };
        assert!(e.to_string().contains("revoice devices"), "{e}");
    }
}
