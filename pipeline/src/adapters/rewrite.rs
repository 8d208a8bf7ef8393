//! The rewrite stage: gathers an utterance's text (up to the piece marked `last`), rewrites it
//! with the previous few utterances as context, and emits the new text (clause by clause when
//! streaming, so speech can start early).
//!
//! **Rewriting ahead.** A [`TextKind::Partial`] text is what an utterance will say if
//! nothing more is heard (live mode sends one when speech stops, before the end of turn is
//! confirmed). The stage starts rewriting it at once but holds what comes out. When the
//! utterance's final text arrives and says the same, the held clauses go out (and any still
//! being written follow as they come), so the rewrite ran inside the end-of-turn wait. Any
//! other text means the guess was wrong: the rewrite is stopped if it is still running, its
//! output dropped, and the final text rewritten as usual. The rewriter is asked exactly what
//! it would have been asked for the final (the same text, context and budget), so what is
//! spoken is the same either way, only sooner.
//!
//! The first clause held also goes downstream at once as a [`TextKind::Partial`] text, so
//! the voice can synthesize it inside the same wait (see [`super::TtsStage`]); it is only
//! spoken if the same clause comes again as final text.

use std::collections::VecDeque;

use crate::engine::{Budget, EngineError, Progress, RewriteRequest, Rewriter, StopCheck, Turn};
use crate::frame::{Frame, Marker, Payload, Text, TextKind, UtteranceId};
use crate::stage::{Admit, EpochGate, Port, Ports, Stage, StageBody, StageError, StageIo};

use super::Engine;

/// How many earlier utterances are handed to a rewrite (the rewriter picks which of them its
/// model sees).
pub const REWRITE_CONTEXT_TURNS: usize = 8;

pub struct RewriteStage {
    name: String,
    engine: Engine<dyn Rewriter>,
    settings: RewriteSettings,
}

#[derive(Clone, Copy, Debug, Default)]
struct RewriteSettings {
    /// Syllables per second of the target voice, to turn a slot's length into a budget;
    /// `None` gives the rewriter no budget.
    syllables_per_second: Option<f64>,
    stream_clauses: bool,
}

impl RewriteStage {
    pub fn new(name: impl Into<String>, engine: Engine<dyn Rewriter>) -> Self {
        Self { name: name.into(), engine, settings: RewriteSettings::default() }
    }

    /// Budget each rewrite by the original utterance's duration at this speaking rate.
    pub fn with_budget(mut self, syllables_per_second: f64) -> Self {
        self.settings.syllables_per_second = Some(syllables_per_second);
        self
    }

    /// Send clauses downstream as they are generated.
    pub fn streaming(mut self, on: bool) -> Self {
        self.settings.stream_clauses = on;
        self
    }
}

impl Stage for RewriteStage {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::Text, output: Port::Text }
    }

    fn start(self: Box<Self>, io: StageIo) -> StageBody {
        StageBody::Blocking(Box::new(move || {
            let engine = self.engine.get()?;
            let mut run = Run { settings: self.settings, engine, io, context: Vec::new(), stash: VecDeque::new() };
            run.run()
        }))
    }
}

/// The stage's state on its thread.
struct Run {
    settings: RewriteSettings,
    engine: Box<dyn Rewriter>,
    io: StageIo,
    context: Vec<Turn>,
    /// Frames read while rewriting ahead, to be handled next.
    stash: VecDeque<Frame>,
}

/// A rewrite made ahead that finished before its utterance's final text came.
struct Ahead {
    utterance: UtteranceId,
    source: String,
    budget: Option<Budget>,
    held: Vec<String>,
    rewritten: String,
}

/// What a rewrite made ahead left.
enum Early {
    /// Finished before its final text came.
    Kept(Ahead),
    /// Nothing to keep: sent on (its final text came while it ran), dropped, or failed.
    None,
    /// Downstream has gone.
    Gone,
}

/// Where a rewrite's output goes: straight downstream, or held until its final text comes.
struct Out {
    utterance: UtteranceId,
    epoch: u64,
    stream_clauses: bool,
    /// The final text; `None` while rewriting ahead of it.
    original: Option<Text>,
    /// While rewriting ahead: the guessed text, whose span and language the first held
    /// clause is sent on with as a guess; `None` once that is done.
    guess: Option<Text>,
    held: Vec<String>,
    /// The clauses sent so far, joined.
    sent: String,
    closed: bool,
}

impl Out {
    fn new(settings: RewriteSettings, utterance: UtteranceId, epoch: u64, original: Option<Text>) -> Self {
        Self { utterance, epoch, stream_clauses: settings.stream_clauses, original, guess: None, held: Vec::new(), sent: String::new(), closed: false }
    }

    fn piece(&self, text: &str, last: bool) -> Frame {
        let original = self.original.as_ref().expect("only sent once the final text is known");
        let mut t = Text::final_text(text.trim(), original.span);
        t.language = original.language.clone();
        t.last = last;
        Frame::text(self.utterance, self.epoch, t)
    }

    fn clause(&mut self, io: &StageIo, clause: &str) {
        if !self.stream_clauses || self.closed || clause.trim().is_empty() {
            return;
        }
        if self.original.is_none() {
            self.held.push(clause.to_string());
            if let Some(hint) = self.guess.take() {
                let mut t = Text { kind: TextKind::Partial, last: false, ..Text::final_text(clause.trim(), hint.span) };
                t.language = hint.language;
                self.closed = io.blocking_send(Frame::text(self.utterance, self.epoch, t)).is_err();
            }
            return;
        }
        self.closed = io.blocking_send(self.piece(clause, false)).is_err();
        self.sent.push_str(clause);
    }

    /// The final text has come: what was held goes out.
    fn confirm(&mut self, io: &StageIo, original: Text) {
        self.original = Some(original);
        for c in std::mem::take(&mut self.held) {
            self.clause(io, &c);
        }
    }

    /// Send the rest of `rewritten` as the last piece and remember the turn; false when
    /// downstream has gone.
    fn finish(self, io: &StageIo, context: &mut Vec<Turn>, source: String, rewritten: String) -> bool {
        if self.closed {
            return false;
        }
        // Whatever was not streamed yet goes out as the last piece.
        let rest = after_streamed(&rewritten, &self.sent).unwrap_or_else(|| {
            tracing::warn!(utterance = self.utterance, "the rewrite's clauses do not add up to its final text");
            ""
        });
        let last = self.piece(rest, true);
        context.push(Turn { original: source, rewritten });
        if context.len() > REWRITE_CONTEXT_TURNS {
            context.remove(0);
        }
        io.blocking_send(last).is_ok()
    }
}

impl RewriteSettings {
    /// The budget of a rewrite of `original`, when the stage gives one.
    fn budget(&self, original: &Text) -> Option<Budget> {
        self.syllables_per_second.map(|sps| {
            let seconds = original.span.duration();
            Budget { seconds, syllables: ((seconds * sps).floor() as usize).max(1) }
        })
    }
}

impl Run {
    fn next(&mut self) -> Option<Frame> {
        self.stash.pop_front().or_else(|| self.io.blocking_recv())
    }

    fn run(&mut self) -> Result<(), StageError> {
        let mut gate = EpochGate::default();
        let mut pending: Option<(UtteranceId, Text)> = None;
        let mut ahead: Option<Ahead> = None;
        while let Some(frame) = self.next() {
            let reset = || {
                pending = None;
                ahead = None;
                self.context.clear();
            };
            match gate.admit_blocking(&frame, &self.io, reset) {
                Admit::Drop => continue,
                Admit::Closed => return Ok(()),
                Admit::Process => {}
            }
            let epoch = gate.epoch();
            match frame.payload {
                Payload::Text(t) if t.kind == TextKind::Partial => {
                    ahead = None;
                    if pending.is_none() {
                        match self.rewrite_ahead(frame.utterance, epoch, t) {
                            Early::Kept(a) => ahead = Some(a),
                            Early::Gone => return Ok(()),
                            Early::None => {}
                        }
                    }
                }
                Payload::Text(t) => {
                    let last = t.last;
                    match &mut pending {
                        Some((u, p)) if *u == frame.utterance => {
                            p.text.push(' ');
                            p.text.push_str(t.text.trim());
                            p.span.end = p.span.end.max(t.span.end);
                            p.words.extend(t.words);
                        }
                        _ => pending = Some((frame.utterance, t)),
                    }
                    if last {
                        let (u, original) = pending.take().expect("just set");
                        let go = match ahead.take() {
                            Some(a) if a.utterance == u && a.source == original.text.trim() && a.budget == self.settings.budget(&original) => {
                                self.deliver(a, epoch, original)
                            }
                            _ => self.rewrite_one(u, epoch, original)?,
                        };
                        if !go {
                            return Ok(());
                        }
                    }
                }
                Payload::Marker(m) => {
                    if let (Marker::UtteranceEnd { .. }, Some((u, _))) = (&m, &pending)
                        && *u == frame.utterance
                    {
                        let (u, original) = pending.take().expect("checked");
                        if !self.rewrite_one(u, epoch, original)? {
                            return Ok(());
                        }
                    }
                    if !matches!(m, Marker::Flushed) && self.io.blocking_send(Frame::marker(frame.utterance, epoch, m)).is_err() {
                        return Ok(());
                    }
                }
                Payload::Audio(_) => {}
            }
        }
        if let Some((u, original)) = pending.take()
            && !self.io.cancel.is_cancelled()
        {
            self.rewrite_one(u, gate.epoch(), original)?;
        }
        Ok(())
    }

    /// Rewrite one utterance and send it on; false when downstream has gone.
    fn rewrite_one(&mut self, utterance: UtteranceId, epoch: u64, original: Text) -> Result<bool, StageError> {
        let source = original.text.trim().to_string();
        if source.is_empty() {
            return Ok(true);
        }
        let stop = self.io.stop_check(epoch);
        let budget = self.settings.budget(&original);
        let mut out = Out::new(self.settings, utterance, epoch, Some(original));
        let Run { engine, io, context, .. } = self;
        let req = RewriteRequest { text: &source, context, budget };
        let rewritten = match io.stats.time(|| engine.rewrite(&req, &mut |c| out.clause(io, c), &stop)) {
            Err(EngineError::Stopped) => return Ok(!out.closed),
            r => r?,
        };
        Ok(out.finish(io, context, source, rewritten))
    }

    /// Start rewriting what an utterance will say if nothing more is heard. The stage reads
    /// its input whenever the rewriter reports progress: the utterance's final text with the
    /// same words (and epoch) lets the clauses out; any other text stops the rewrite (the
    /// frames read are handled next). A failed rewrite made ahead is dropped quietly: the
    /// final text is then rewritten as usual, and its error reported.
    fn rewrite_ahead(&mut self, utterance: UtteranceId, epoch: u64, hint: Text) -> Early {
        let source = hint.text.trim().to_string();
        if source.is_empty() {
            return Early::None;
        }
        let wrong = self.io.cancel.child_token();
        let stop = StopCheck::new(wrong.clone(), self.io.epochs.clone(), epoch);
        let settings = self.settings;
        let budget = settings.budget(&hint);
        let mut out = Out::new(self.settings, utterance, epoch, None);
        out.guess = Some(hint);
        let Run { engine, io, context, stash, .. } = self;
        let req = RewriteRequest { text: &source, context, budget };
        let stats = io.stats.clone();
        let mut on_progress = |progress: Progress<'_>| {
            // What has arrived meanwhile: the final text, or a sign the guess was wrong.
            while out.original.is_none() && !wrong.is_cancelled() {
                let Some(f) = io.try_recv() else { break };
                match &f.payload {
                    Payload::Text(t)
                        if f.utterance == utterance
                            && f.epoch == epoch
                            && t.kind == TextKind::Final
                            && t.last
                            && t.text.trim() == source
                            && settings.budget(t) == budget =>
                    {
                        out.confirm(io, t.clone());
                        continue;
                    }
                    Payload::Text(_) => wrong.cancel(),
                    _ => {}
                }
                stash.push_back(f);
            }
            if let Progress::Clause(c) = progress
                && !wrong.is_cancelled()
            {
                out.clause(io, c);
            }
        };
        let result = stats.time(|| engine.rewrite_watched(&req, &mut on_progress, &stop));
        if wrong.is_cancelled() {
            tracing::debug!(utterance, "the utterance went on: the rewrite made ahead is dropped");
            return Early::None;
        }
        let rewritten = match result {
            Ok(r) => r,
            Err(EngineError::Stopped) => return Early::None,
            Err(e) => {
                tracing::debug!(utterance, error = %e, "the rewrite made ahead failed; the final text is rewritten instead");
                return Early::None;
            }
        };
        if out.original.is_none() {
            return Early::Kept(Ahead { utterance, source, budget, held: out.held, rewritten });
        }
        if out.finish(io, context, source, rewritten) { Early::None } else { Early::Gone }
    }

    /// The final text says what was rewritten ahead: send it on.
    fn deliver(&mut self, ahead: Ahead, epoch: u64, original: Text) -> bool {
        let mut out = Out::new(self.settings, ahead.utterance, epoch, None);
        out.held = ahead.held;
        out.confirm(&self.io, original);
        out.finish(&self.io, &mut self.context, ahead.source, ahead.rewritten)
    }
}

/// What of `text` follows the clauses already `streamed` (clauses are joined with spaces in
/// the text; only spacing may differ); `None` when the clauses are not its start.
fn after_streamed<'t>(text: &'t str, streamed: &str) -> Option<&'t str> {
    let mut rest = text;
    for c in streamed.chars().filter(|c| !c.is_whitespace()) {
        rest = rest.trim_start().strip_prefix(c)?;
    }
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::after_streamed;

    #[test]
    fn streamed_clauses_are_found_at_the_start_of_the_text_whatever_the_spacing() {
        assert_eq!(after_streamed("Hello there, friend. Bye.", "Hello there,friend."), Some(" Bye."));
        assert_eq!(after_streamed("All of it.", ""), Some("All of it."));
        assert_eq!(after_streamed("All of it.", "All of it."), Some(""));
        assert_eq!(after_streamed("Something else.", "Hello,"), None);
    }
}
