//! Key names of one queue (see the crate docs, "Keys").

/// The consumer group every worker of a queue joins.
pub(crate) const GROUP: &str = "otelconc";
/// The entry field holding the job's JSON.
pub(crate) const JOB_FIELD: &str = "job";

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) name: String,
    pub(crate) stream: String,
    pub(crate) dead: String,
    done_prefix: String,
}

impl Keys {
    pub(crate) fn new(name: &str) -> Self {
        let stream = format!("otelconc:{{{name}}}");
        Self {
            name: name.to_string(),
            dead: format!("{stream}:dead"),
            done_prefix: format!("{stream}:done:"),
            stream,
        }
    }

    /// The queue's name, shared, for metric attributes.
    pub(crate) fn name_arc(&self) -> std::sync::Arc<str> {
        std::sync::Arc::from(self.name.as_str())
    }

    pub(crate) fn done(&self, id: &str) -> String {
        format!("{}{id}", self.done_prefix)
    }
}
