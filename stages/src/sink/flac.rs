//! A streaming FLAC writer (16-bit), on the frame encoder of the `flacenc` crate.
//!
//! Samples are encoded a block at a time and written as they come, so memory stays flat
//! however long the output. The STREAMINFO header is written first with the totals
//! unknown and rewritten in place at the end (it has a fixed size), with the sample count,
//! the frame sizes and the MD5 of the audio.

use std::io::{Seek, SeekFrom, Write};

use flacenc::component::{BitRepr, Stream, StreamInfo};
use flacenc::error::{Verified, Verify};
use flacenc::source::{Context, Fill, FrameBuf};

use revoice_pipeline::AudioFormat;

/// Samples per channel in one FLAC frame (the reference encoder's default).
const BLOCK: usize = 4096;
const BITS: usize = 16;

pub struct FlacWriter<W: Write + Seek> {
    out: W,
    config: Verified<flacenc::config::Encoder>,
    info: StreamInfo,
    frame: FrameBuf,
    context: Context,
    block: Vec<i32>,
    channels: usize,
    frames_written: usize,
}

impl<W: Write + Seek> FlacWriter<W> {
    pub fn new(mut out: W, format: AudioFormat) -> Result<Self, String> {
        let channels = format.channel_count();
        let info = StreamInfo::new(format.rate() as usize, channels, BITS).map_err(|e| format!("FLAC cannot hold {format} audio ({e})"))?;
        let config = flacenc::config::Encoder::default().into_verified().map_err(|(_, e)| e.to_string())?;
        let frame = FrameBuf::with_size(channels, BLOCK).map_err(|e| e.to_string())?;
        out.write_all(&header(&info)?).map_err(|e| e.to_string())?;
        Ok(Self { out, config, info, frame, context: Context::new(BITS, channels), block: Vec::with_capacity(BLOCK * channels), channels, frames_written: 0 })
    }

    /// Append interleaved samples.
    pub fn write(&mut self, samples: impl Iterator<Item = i16>) -> Result<(), String> {
        for s in samples {
            self.block.push(i32::from(s));
            if self.block.len() == BLOCK * self.channels {
                self.encode_block()?;
            }
        }
        Ok(())
    }

    fn encode_block(&mut self) -> Result<(), String> {
        self.frame.fill_interleaved(&self.block).map_err(|e| e.to_string())?;
        self.context.fill_interleaved(&self.block).map_err(|e| e.to_string())?;
        let frame = flacenc::encode_fixed_size_frame(&self.config, &self.frame, self.frames_written, &self.info).map_err(|e| e.to_string())?;
        self.info.update_frame_info(&frame);
        let mut sink = flacenc::bitsink::ByteSink::new();
        frame.write(&mut sink).map_err(|e| format!("{e:?}"))?;
        self.out.write_all(sink.as_slice()).map_err(|e| e.to_string())?;
        self.frames_written += 1;
        self.block.clear();
        Ok(())
    }

    /// Encode what is left, rewrite the header with the totals, and hand back the output.
    pub fn finish(mut self) -> Result<W, String> {
        if !self.block.is_empty() {
            self.encode_block()?;
        }
        self.info.set_md5_digest(&self.context.md5_digest());
        // Fixed-size blocks: the minimum excludes the (shorter) last block, as the format
        // says and decoders check.
        self.info.set_block_sizes(BLOCK, BLOCK).map_err(|e| e.to_string())?;
        let header = header(&self.info)?;
        self.out.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        self.out.write_all(&header).map_err(|e| e.to_string())?;
        self.out.flush().map_err(|e| e.to_string())?;
        Ok(self.out)
    }
}

/// "fLaC" and the STREAMINFO block (42 bytes whatever the values).
fn header(info: &StreamInfo) -> Result<Vec<u8>, String> {
    let mut sink = flacenc::bitsink::ByteSink::new();
    Stream::with_stream_info(info.clone()).write(&mut sink).map_err(|e| format!("{e:?}"))?;
    Ok(sink.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Input;
    use crate::source::file::decode_all;

    #[test]
    fn what_is_written_decodes_to_the_same_samples() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.flac");
        let format = AudioFormat::new(22_050, 2).unwrap();
        // Not a multiple of the block size, so the last frame is short.
        let samples: Vec<i16> = (0..2 * 10_000).map(|i| ((i as f32 * 0.01).sin() * 12_000.0) as i16).collect();
        let mut w = FlacWriter::new(std::fs::File::create(&path).unwrap(), format).unwrap();
        w.write(samples.iter().copied()).unwrap();
        w.finish().unwrap();
        let (got_format, decoded) = decode_all(&Input::Path(path.clone())).unwrap();
        assert_eq!(got_format, format);
        assert_eq!(decoded.len(), samples.len());
        for (a, b) in samples.iter().zip(&decoded) {
            assert!((f32::from(*a) / 32_768.0 - b).abs() < 1e-4, "{a} vs {b}");
        }
        assert!(std::fs::metadata(&path).unwrap().len() < (samples.len() * 2) as u64, "compressed");
    }
}
