//! Kubernetes Events from the roles: namespaced objects through kube's Recorder, cluster-scoped
//! ones (pools, policies) as core/v1 Events in `default`, where kubectl looks for them. kube's
//! Recorder cannot write those, and older API servers refuse them through events.k8s.io/v1.

use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};

use crate::status::EventSpec;

pub struct EventPublisher {
    client: Client,
    recorder: Recorder,
    component: String,
    instance: String,
    action: &'static str,
}

impl EventPublisher {
    /// `action` is what the role was doing (events.k8s.io's `action`), e.g. "Allocate".
    pub fn new(client: Client, component: &str, instance: &str, action: &'static str) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: component.into(),
                instance: Some(instance.into()),
            },
        );
        EventPublisher {
            client,
            recorder,
            component: component.into(),
            instance: instance.into(),
            action,
        }
    }

    /// Publishes; a failure is logged, never fatal.
    pub async fn publish(&self, reference: &ObjectReference, ev: EventSpec) {
        let note: String = ev.note.chars().take(1000).collect();
        let result = if reference.namespace.is_none() {
            self.publish_cluster_scoped(reference, &ev, note).await
        } else {
            let event = Event {
                type_: if ev.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: ev.reason.into(),
                note: Some(note),
                action: self.action.into(),
                secondary: None,
            };
            self.recorder.publish(&event, reference).await
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, object = ?reference.name, reason = ev.reason, "could not publish event");
        }
    }

    async fn publish_cluster_scoped(
        &self,
        reference: &ObjectReference,
        ev: &EventSpec,
        note: String,
    ) -> Result<(), kube::Error> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let name = reference.name.clone().unwrap_or_default();
        let event = CoreEvent {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: reference.clone(),
            reason: Some(ev.reason.into()),
            message: Some(note),
            type_: Some(if ev.warning { "Warning" } else { "Normal" }.into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Default::default()
        };
        let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), "default");
        api.create(&Default::default(), &event).await.map(|_| ())
    }
}
