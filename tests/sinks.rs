//! Sinks: the conformance suite against the memory sink, directly and through trait objects.

use userphoto::conformance::{sink_contract, SinkFixture};
use userphoto::sink::{DirectorySink, MemorySink};
use userphoto::UserKey;

fn fixture() -> SinkFixture {
    SinkFixture {
        users: (0..10).map(|i| UserKey::new(format!("user{i}"))).collect(),
        absent: UserKey::new("nobody"),
    }
}

fn sink() -> MemorySink {
    MemorySink::new(10_000).with_users((0..10).map(|i| format!("user{i}")))
}

#[tokio::test]
async fn memory_sink_conforms() {
    let s = sink();
    sink_contract(&s, &fixture()).await;
    assert!(
        s.users().iter().all(|(_, has)| !has),
        "the suite leaves users without photos"
    );
}

#[tokio::test]
async fn memory_sink_conforms_through_arc_and_box() {
    let arc: std::sync::Arc<dyn DirectorySink> = std::sync::Arc::new(sink());
    sink_contract(&arc, &fixture()).await;
    let boxed: Box<dyn DirectorySink> = Box::new(sink());
    sink_contract(&boxed, &fixture()).await;
}

/// The suite must catch a sink that breaks the contract: here, one that reports an unknown
/// user as "no photo".
#[tokio::test]
#[should_panic(expected = "unknown user succeeded")]
async fn the_suite_rejects_a_sink_that_confuses_unknown_and_empty() {
    #[derive(Debug)]
    struct Lax(MemorySink);
    #[async_trait::async_trait]
    impl DirectorySink for Lax {
        fn name(&self) -> &str {
            "lax"
        }
        fn capabilities(&self) -> userphoto::sink::SinkCapabilities {
            self.0.capabilities()
        }
        async fn current(
            &self,
            key: &UserKey,
        ) -> userphoto::Result<Option<userphoto::sink::CurrentPhoto>> {
            Ok(self.0.current(key).await.unwrap_or(None))
        }
        async fn put(
            &self,
            key: &UserKey,
            jpeg: &bytes::Bytes,
        ) -> userphoto::Result<Option<String>> {
            self.0.put(key, jpeg).await
        }
        async fn delete(&self, key: &UserKey) -> userphoto::Result<()> {
            self.0.delete(key).await
        }
    }
    sink_contract(&Lax(sink()), &fixture()).await;
}
