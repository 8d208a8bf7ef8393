//! The podcast script (TOML): what is read, what it inherits, and every check that runs
//! before any work starts. Each error names the script, the line and the column.
//!
//! ```toml
//! [defaults]            # inherited by every episode and speaker
//! voice = "joe"
//! style = "identity"    # or instruction = "..."; llm = "qwen"; whisper = "tiny.en"; language = "en"
//!
//! [output]
//! dir = "out"           # relative to the script
//! name = "{name}.wav"   # {name}, {stem}, {index}; .wav or .flac
//! formats = ["wav", "flac"]  # each is written (default: the name's extension)
//! loudness = -16.0      # LUFS; left out: the level is left as it is
//! transcripts = true   # .txt (speaker-labelled) and .srt of what is said
//!
//! [speaker.FEE013]      # speakers every episode knows
//! voice = "espeak-en"
//!
//! [[episode]]
//! input = "show/*.flac" # a file or a glob (`*`, `?` in the file name)
//! speakers = { rttm = "show/ep1.rttm" }  # or channels = [..], or ranges = [{ speaker, from, to }]
//! [episode.speaker.guest]   # this episode's own speakers, or overrides
//! keep = true
//! [[episode.segment]]
//! from = 0.0           # seconds, or a clock time: "1:02:03.5"
//! to = "0:12.5"
//! action = "keep"       # keep | drop | revoice (with style or instruction)
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw::{RawEpisode, RawOutput, RawRange, RawScript, RawSegment, RawSpeaker, check_pattern, overlay};
use super::speakers::{self, Turn};
use crate::rewrite::{IDENTITY, Style};
use crate::tts::{self, Voice};

pub use super::raw::{glob_match, line_col};

/// A script error: where it is and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", location(.path, .line_col))]
pub struct ScriptError {
    pub path: PathBuf,
    /// 1-based line and column, where the error has a place in the file.
    pub line_col: Option<(usize, usize)>,
    pub message: String,
}

fn location(path: &Path, lc: &Option<(usize, usize)>) -> String {
    match lc {
        Some((l, c)) => format!("{}:{l}:{c}: ", path.display()),
        None => format!("{}: ", path.display()),
    }
}

/// The name used for the one speaker of an episode with no `speakers` table.
pub const SINGLE_SPEAKER: &str = "default";

/// How an utterance is rewritten: style (or instruction) and model. Its `key` goes into
/// the rewrite step's hashes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RewriteSpec {
    pub style: String,
    pub instruction: Option<String>,
    pub llm: String,
}

impl RewriteSpec {
    pub fn is_identity(&self) -> bool {
        self.instruction.is_none() && self.style.eq_ignore_ascii_case(IDENTITY)
    }

    pub fn key(&self) -> String {
        if self.is_identity() {
            return IDENTITY.into();
        }
        format!("style={}|instruction={}|llm={}", self.style, self.instruction.as_deref().unwrap_or(""), self.llm)
    }
}

/// What happens to one speaker's speech.
#[derive(Clone, Debug)]
pub enum SpeakerAction {
    /// Their audio is left untouched.
    Keep,
    Revoice { voice: Box<Voice>, rewrite: RewriteSpec },
}

/// How speakers are told apart.
#[derive(Clone, Debug)]
pub enum SpeakerSource {
    /// One speaker ([`SINGLE_SPEAKER`]).
    Single,
    /// Turns from an RTTM file or fixed ranges; the speaker of a piece of speech is the
    /// one whose turns overlap it most.
    Turns(Vec<Turn>),
    /// One speaker per channel, in channel order.
    Channels(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum SegmentAction {
    Keep,
    Drop,
    Revoice(RewriteSpec),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub from: f64,
    pub to: f64,
    pub action: SegmentAction,
}

/// One episode, everything inherited and checked.
#[derive(Clone, Debug)]
pub struct EpisodePlan {
    pub name: String,
    pub input: PathBuf,
    pub output: PathBuf,
    pub speakers: SpeakerSource,
    /// Every speaker the episode can meet, with what to do.
    pub actions: BTreeMap<String, SpeakerAction>,
    /// Sorted by start, not overlapping.
    pub segments: Vec<Segment>,
    pub loudness: Option<f64>,
}

/// A checked script.
#[derive(Clone, Debug)]
pub struct Script {
    pub path: PathBuf,
    pub episodes: Vec<EpisodePlan>,
    pub whisper_model: Option<String>,
    pub language: String,
    pub out_dir: PathBuf,
    pub rate: u32,
    /// Audio formats written for each episode (`wav`, `flac`).
    pub formats: Vec<String>,
    pub transcripts: bool,
    pub report: PathBuf,
    pub state_dir: PathBuf,
    /// Things that are allowed but look like mistakes (a speaker no episode has).
    pub warnings: Vec<String>,
}

/// `wav` or `flac`, from an output name pattern (checked to end in one of them).
fn name_extension(pattern: &str) -> String {
    if pattern.to_ascii_lowercase().ends_with(".flac") { "flac".into() } else { "wav".into() }
}

/// Read and check the script at `path`. Nothing is loaded or written.
pub fn load(path: &Path) -> Result<Script, ScriptError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ScriptError { path: path.to_path_buf(), line_col: None, message: format!("cannot read the script ({e})") })?;
    parse(&text, path)
}

/// Check `text` as the script at `path` (relative paths in it are relative to its folder).
pub fn parse(text: &str, path: &Path) -> Result<Script, ScriptError> {
    let ctx = Ctx { text, path, base: path.parent().map(Path::to_path_buf).unwrap_or_default() };
    let raw: RawScript = toml::from_str(text).map_err(|e| ctx.err(e.span(), e.message().to_string()))?;
    ctx.resolve(raw)
}

struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
    base: PathBuf,
}

type Res<T> = Result<T, ScriptError>;

impl Ctx<'_> {
    fn err(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ScriptError {
        let line_col = span.map(|s| line_col(self.text, s.start));
        ScriptError { path: self.path.to_path_buf(), line_col, message: message.into() }
    }

    fn at<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> ScriptError {
        self.err(Some(s.span()), message)
    }

    fn file(&self, s: &Spanned<String>, what: &str) -> Res<PathBuf> {
        let p = self.base.join(s.get_ref());
        if !p.is_file() {
            return Err(self.at(s, format!("{what} `{}` not found (looked for {}); check the path (relative to the script)", s.get_ref(), p.display())));
        }
        Ok(p)
    }

    fn resolve(&self, raw: RawScript) -> Res<Script> {
        let d = &raw.defaults;
        if raw.episode.is_empty() {
            return Err(self.err(None, "no [[episode]]; add one with `input = \"FILE\"`"));
        }
        let llm = d.llm.as_ref().map_or("qwen".to_string(), |s| s.get_ref().clone());
        let base_speaker = RawSpeaker { voice: d.voice.clone(), style: d.style.clone(), instruction: d.instruction.clone(), keep: None };
        let o = &raw.output;
        if let Some(f) = &o.formats
            && let Some(bad) = f.get_ref().iter().find(|f| !["wav", "flac"].contains(&f.to_ascii_lowercase().as_str()))
        {
            return Err(self.at(f, format!("output format `{bad}` is not supported; use \"wav\" or \"flac\"")));
        }
        if let Some(l) = &o.loudness
            && !(-70.0..=0.0).contains(l.get_ref())
        {
            return Err(self.at(l, format!("loudness {} LUFS is out of range (-70 to 0; podcasts use -16)", l.get_ref())));
        }
        if let Some(r) = &o.rate
            && !(8_000..=192_000).contains(r.get_ref())
        {
            return Err(self.at(r, format!("rate {} Hz is out of range (8000 to 192000)", r.get_ref())));
        }
        let name_pattern = o.name.as_ref().map_or("{name}.wav".to_string(), |s| s.get_ref().clone());
        if let Some(n) = &o.name {
            check_pattern(n.get_ref()).map_err(|m| self.at(n, m))?;
        }
        let out_dir = self.base.join(o.dir.as_ref().map_or("out", |s| s.get_ref().as_str()));
        let language = d.language.as_ref().map_or("en".to_string(), |s| s.get_ref().clone());
        let mut episodes = Vec::new();
        for ep in &raw.episode {
            let inputs = self.inputs(&ep.get_ref().input)?;
            let many = inputs.len() > 1;
            for input in inputs {
                let index = episodes.len() + 1;
                episodes.push(self.episode(ep, input, many, index, &raw.speaker, &base_speaker, &llm, o, &name_pattern, &out_dir)?);
            }
        }
        let mut warnings = Vec::new();
        for (name, at) in &raw.speaker {
            if !episodes.iter().any(|e| e.actions.contains_key(name)) {
                let (l, c) = line_col(self.text, at.span().start);
                warnings.push(format!("{}:{l}:{c}: speaker `{name}` is in no episode (not in any RTTM file, range or channel list); check the name", self.path.display()));
            }
        }
        let mut outputs = BTreeMap::new();
        for (i, e) in episodes.iter().enumerate() {
            if let Some(j) = outputs.insert(e.output.clone(), i) {
                return Err(self.err(
                    None,
                    format!("episodes {} and {} both write {}; give [output] name a {{stem}} or {{index}}", episodes[j].name, e.name, e.output.display()),
                ));
            }
        }
        Ok(Script {
            path: self.path.to_path_buf(),
            episodes,
            whisper_model: d.whisper.as_ref().map(|s| s.get_ref().clone()),
            language,
            rate: o.rate.as_ref().map_or(22_050, |r| *r.get_ref()),
            formats: match &o.formats {
                Some(f) if !f.get_ref().is_empty() => f.get_ref().iter().map(|f| f.to_ascii_lowercase()).collect(),
                _ => vec![name_extension(&name_pattern)],
            },
            transcripts: o.transcripts.unwrap_or(true),
            report: o.report.as_ref().map_or_else(|| out_dir.join("podcast-report.json"), |s| self.base.join(s.get_ref())),
            state_dir: o.state_dir.as_ref().map_or_else(|| out_dir.join(".revoice-state"), |s| self.base.join(s.get_ref())),
            out_dir,
            warnings,
        })
    }

    /// The files an `input` names: one path, or a glob in its file name.
    fn inputs(&self, s: &Spanned<String>) -> Res<Vec<PathBuf>> {
        let given = s.get_ref();
        if !given.contains(['*', '?']) {
            return Ok(vec![self.file(s, "input")?]);
        }
        let full = self.base.join(given);
        let (dir, pattern) = match (full.parent(), full.file_name()) {
            (Some(d), Some(f)) => (d.to_path_buf(), f.to_string_lossy().to_string()),
            _ => return Err(self.at(s, format!("input `{given}` is not a usable glob"))),
        };
        if dir.to_string_lossy().contains(['*', '?']) {
            return Err(self.at(s, format!("input `{given}`: wildcards only work in the file name, not in folders")));
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| self.at(s, format!("input `{given}`: cannot list {} ({e})", dir.display())))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| glob_match(&pattern, &n.to_string_lossy())))
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(self.at(s, format!("input `{given}` matches no file in {}", dir.display())));
        }
        Ok(found)
    }

    #[allow(clippy::too_many_arguments)]
    fn episode(
        &self,
        ep: &Spanned<RawEpisode>,
        input: PathBuf,
        many: bool,
        index: usize,
        global: &BTreeMap<String, Spanned<RawSpeaker>>,
        defaults: &RawSpeaker,
        llm: &str,
        o: &RawOutput,
        name_pattern: &str,
        out_dir: &Path,
    ) -> Res<EpisodePlan> {
        let e = ep.get_ref();
        let stem = input.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "episode".into());
        let name = match (&e.name, many) {
            (Some(n), false) => n.get_ref().clone(),
            (Some(n), true) => format!("{}-{stem}", n.get_ref()),
            (None, _) => stem.clone(),
        };
        let pattern = match &e.output {
            Some(p) => {
                check_pattern(p.get_ref()).map_err(|m| self.at(p, m))?;
                p.get_ref().clone()
            }
            None => name_pattern.to_string(),
        };
        let output = out_dir.join(pattern.replace("{name}", &name).replace("{stem}", &stem).replace("{index}", &format!("{index:03}")));
        // The episode's defaults: the script's, then the episode's own.
        let mut base = defaults.clone();
        overlay(&mut base, &RawSpeaker { voice: e.voice.clone(), style: e.style.clone(), instruction: e.instruction.clone(), keep: None });
        let (speakers, known) = self.speakers(e, ep)?;
        let mut actions = BTreeMap::new();
        for (name, raw) in global.iter().chain(e.speaker.iter()) {
            if !known.contains(name) && !e.speaker.contains_key(name) {
                continue; // a show's speaker who is not in this episode
            }
            let mut s = base.clone();
            if let Some(g) = global.get(name) {
                overlay(&mut s, g.get_ref());
            }
            if let Some(own) = e.speaker.get(name) {
                overlay(&mut s, own.get_ref());
            }
            actions.insert(name.clone(), self.action(name, &s, llm, raw)?);
        }
        for name in &known {
            if !actions.contains_key(name) {
                let action = self.action(name, &base, llm, &e.input).map_err(|mut err| {
                    err.message = format!("{} (speaker `{name}` of episode {}: add [speaker.{name}] with a voice, or a voice in [defaults])", err.message, stem);
                    err
                })?;
                actions.insert(name.clone(), action);
            }
        }
        let segments = self.segments(&e.segment, llm, &base)?;
        let loudness = e.loudness.as_ref().or(o.loudness.as_ref()).map(|l| *l.get_ref());
        Ok(EpisodePlan { name, input, output, speakers, actions, segments, loudness })
    }

    /// The speaker source and the speaker names it can produce.
    fn speakers(&self, e: &RawEpisode, ep: &Spanned<RawEpisode>) -> Res<(SpeakerSource, Vec<String>)> {
        let Some(sp) = &e.speakers else {
            return Ok((SpeakerSource::Single, vec![SINGLE_SPEAKER.to_string()]));
        };
        let s = sp.get_ref();
        let given = usize::from(s.rttm.is_some()) + usize::from(s.channels.is_some()) + usize::from(s.ranges.is_some());
        if given != 1 {
            return Err(self.at(sp, "speakers: give exactly one of rttm = \"FILE\", channels = [..] or ranges = [..]"));
        }
        let _ = ep;
        if let Some(r) = &s.rttm {
            let path = self.file(r, "RTTM file")?;
            let turns = speakers::read_rttm(&path).map_err(|m| self.at(r, m))?;
            let mut names: Vec<String> = turns.iter().map(|t| t.speaker.clone()).collect();
            names.sort();
            names.dedup();
            return Ok((SpeakerSource::Turns(turns), names));
        }
        if let Some(c) = &s.channels {
            if c.get_ref().is_empty() {
                return Err(self.at(c, "channels = [] names no speaker; give one name per channel"));
            }
            return Ok((SpeakerSource::Channels(c.get_ref().clone()), c.get_ref().clone()));
        }
        let ranges = s.ranges.as_deref().unwrap_or_default();
        let mut turns: Vec<(Turn, &Spanned<RawRange>)> = Vec::new();
        for r in ranges {
            let v = r.get_ref();
            let (from, to) = (v.from.0, v.to.0);
            if !(from >= 0.0 && to > from) {
                return Err(self.at(r, format!("range {from}..{to} s: `to` must be after `from`, both at or after 0")));
            }
            turns.push((Turn { speaker: v.speaker.clone(), start: from, end: to }, r));
        }
        turns.sort_by(|a, b| a.0.start.total_cmp(&b.0.start));
        for w in turns.windows(2) {
            if w[1].0.start < w[0].0.end {
                let (a, b) = (&w[0].0, &w[1].0);
                return Err(self.at(w[1].1, format!(
                    "speaker ranges overlap: {} {}..{} s and {} {}..{} s; one range per moment",
                    a.speaker, a.start, a.end, b.speaker, b.start, b.end
                )));
            }
        }
        let mut names: Vec<String> = turns.iter().map(|t| t.0.speaker.clone()).collect();
        names.sort();
        names.dedup();
        Ok((SpeakerSource::Turns(turns.into_iter().map(|t| t.0).collect()), names))
    }

    fn action<T>(&self, name: &str, s: &RawSpeaker, llm: &str, at: &Spanned<T>) -> Res<SpeakerAction> {
        if s.keep == Some(true) {
            return Ok(SpeakerAction::Keep);
        }
        let Some(voice_name) = &s.voice else {
            return Err(self.at(at, format!("speaker `{name}` has no voice; give it `voice = \"NAME\"` (see `revoice voices list`) or `keep = true`")));
        };
        let voice = self.voice(voice_name)?;
        let rewrite = self.rewrite(s.style.as_ref(), s.instruction.as_ref(), llm, voice.style.as_deref())?;
        Ok(SpeakerAction::Revoice { voice: Box::new(voice), rewrite })
    }

    fn voice(&self, s: &Spanned<String>) -> Res<Voice> {
        let name = s.get_ref();
        let found = if name.ends_with(".toml") {
            let p = self.file(s, "voice profile")?;
            Voice::from_file(&p)
        } else {
            tts::find_voice(name)
        };
        found.map_err(|e| self.at(s, e.to_string()))
    }

    fn rewrite(&self, style: Option<&Spanned<String>>, instruction: Option<&Spanned<String>>, llm: &str, voice_style: Option<&str>) -> Res<RewriteSpec> {
        if let Some(i) = instruction {
            Style::custom(i.get_ref()).map_err(|e| self.at(i, e.to_string()))?;
            return Ok(RewriteSpec { style: "custom".into(), instruction: Some(i.get_ref().clone()), llm: llm.into() });
        }
        let name = match style {
            Some(s) => {
                if !s.get_ref().eq_ignore_ascii_case(IDENTITY) {
                    Style::preset(s.get_ref()).map_err(|e| self.at(s, e.to_string()))?;
                }
                s.get_ref().clone()
            }
            None => voice_style.unwrap_or(IDENTITY).to_string(),
        };
        Ok(RewriteSpec { style: name, instruction: None, llm: llm.into() })
    }

    fn segments(&self, raw: &[Spanned<RawSegment>], llm: &str, base: &RawSpeaker) -> Res<Vec<Segment>> {
        let mut out: Vec<(Segment, &Spanned<RawSegment>)> = Vec::new();
        for s in raw {
            let v = s.get_ref();
            let (from, to) = (v.from.0, v.to.0);
            if !(from >= 0.0 && to > from) {
                return Err(self.at(s, format!("segment {from}..{to} s: `to` must be after `from`, both at or after 0")));
            }
            let styled = v.style.is_some() || v.instruction.is_some();
            let action = match v.action.get_ref().as_str() {
                "keep" | "drop" if styled => {
                    return Err(self.at(s, format!("a `{}` segment takes no style or instruction", v.action.get_ref())));
                }
                "keep" => SegmentAction::Keep,
                "drop" => SegmentAction::Drop,
                "revoice" if !styled => {
                    return Err(self.at(s, "a `revoice` segment needs `style` or `instruction` (how it differs)"));
                }
                "revoice" => SegmentAction::Revoice(self.rewrite(v.style.as_ref(), v.instruction.as_ref(), llm, base.style.as_ref().map(|s| s.get_ref().as_str()))?),
                other => return Err(self.at(&v.action, format!("unknown segment action `{other}`; use keep, drop or revoice"))),
            };
            out.push((Segment { from, to, action }, s));
        }
        out.sort_by(|a, b| a.0.from.total_cmp(&b.0.from));
        for w in out.windows(2) {
            if w[1].0.from < w[0].0.to {
                return Err(self.at(w[1].1, format!(
                    "segments overlap: {}..{} s and {}..{} s; each moment may have one rule",
                    w[0].0.from, w[0].0.to, w[1].0.from, w[1].0.to
                )));
            }
        }
        Ok(out.into_iter().map(|s| s.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_inherited_and_overridden() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wav"), b"x").unwrap();
        let text = "[defaults]\nvoice = \"espeak-en\"\nstyle = \"identity\"\n[speaker.host]\nvoice = \"espeak-de\"\n\
                    [[episode]]\ninput = \"a.wav\"\nspeakers = { ranges = [{ speaker = \"host\", from = 0, to = 5 }, { speaker = \"guest\", from = 5, to = 9 }] }\n\
                    [episode.speaker.guest]\nkeep = true\n";
        let s = parse(text, &dir.path().join("s.toml")).unwrap();
        let ep = &s.episodes[0];
        assert!(matches!(&ep.actions["host"], SpeakerAction::Revoice { voice, .. } if voice.name == "espeak-de"));
        assert!(matches!(&ep.actions["guest"], SpeakerAction::Keep));
        assert_eq!(ep.output, dir.path().join("out/a.wav"));
    }
}
