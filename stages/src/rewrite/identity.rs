//! The identity rewriter: the text passes unchanged. A real mode (pure re-voicing) and the
//! rewriter tests use to measure the rest of the pipeline.

use revoice_pipeline::{EngineError, RewriteRequest, Rewriter, StopCheck};

use super::clauses;

#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityRewriter;

impl Rewriter for IdentityRewriter {
    fn name(&self) -> String {
        "identity".to_string()
    }

    fn rewrite(
        &mut self,
        req: &RewriteRequest<'_>,
        on_clause: &mut dyn FnMut(&str),
        stop: &StopCheck,
    ) -> Result<String, EngineError> {
        if req.text.trim().is_empty() {
            return Err(EngineError::BadInput("empty utterance: nothing to rewrite".to_string()));
        }
        for clause in clauses::split(req.text) {
            if stop.should_stop() {
                return Err(EngineError::Stopped);
            }
            on_clause(&clause);
        }
        Ok(req.text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_passes_unchanged_clause_by_clause() {
        let text = "Hello there, this is a test of 3 clauses, isn't it? Yes.";
        let req = RewriteRequest { text, context: &[], budget: None };
        let mut got = Vec::new();
        let out = IdentityRewriter.rewrite(&req, &mut |c| got.push(c.to_string()), &StopCheck::never()).unwrap();
        assert_eq!(out, text);
        assert_eq!(got.join(" "), text);
        assert_eq!(got, vec!["Hello there, this is a test of 3 clauses,", "isn't it? Yes."]);
    }

    #[test]
    fn empty_input_is_refused() {
        let req = RewriteRequest { text: "  ", context: &[], budget: None };
        let err = IdentityRewriter.rewrite(&req, &mut |_| {}, &StopCheck::never()).unwrap_err();
        assert!(matches!(err, EngineError::BadInput(_)));
    }
}
