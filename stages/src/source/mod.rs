//! Where audio comes from: files (symphonia) and the microphone.
