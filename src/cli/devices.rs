//! `revoice devices`: the audio devices cpal sees.

use cpal::traits::{DeviceTrait, HostTrait};

use super::Global;

#[derive(Debug, serde::Serialize)]
struct DeviceInfo {
    index: usize,
    direction: &'static str,
    name: String,
    default: bool,
    /// "48000 Hz, 2 ch", or why the device cannot be used.
    config: String,
}

pub fn run(global: &Global) -> anyhow::Result<()> {
    let host = cpal::default_host();
    let mut devices = Vec::new();
    let name_of = |d: &cpal::Device| d.description().map(|x| x.name().to_string()).unwrap_or_else(|e| format!("(unnamed: {e})"));
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
    let usable = devices.iter().filter(|d| !d.config.starts_with("unusable")).count();
    if global.json {
        println!("{}", serde_json::json!({ "host": host.id().name(), "devices": devices, "usable": usable }));
        return Ok(());
    }
    if devices.is_empty() {
        println!("No audio devices found (host {}). `revoice live` needs a microphone and speakers; `revoice file` works without them.", host.id().name());
        return Ok(());
    }
    println!("host: {}", host.id().name());
    for d in &devices {
        println!("{:>6} {:>2}  {}{}  [{}]", d.direction, d.index, d.name, if d.default { " (default)" } else { "" }, d.config);
    }
    if usable == 0 {
        println!("None of these devices can be opened (no sound card?). `revoice file` works without them.");
    }
    Ok(())
}
