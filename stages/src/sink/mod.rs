//! Where audio goes: files, the speaker, nowhere.
