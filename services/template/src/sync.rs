//! SyncTemplates: pull an app's templates from WeChat, keep them (so
//! validation knows the real fields), and bring the business templates bound
//! to them up to date. A business template whose WeChat template vanished is
//! flagged (`wechat_template_missing`), never deleted: an operator decides.

use crate::content::placeholders;
use crate::error::TemplateError;
use crate::registry::TemplateRegistry;
use async_trait::async_trait;
use std::collections::BTreeMap;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::{
    AppKind, GetAccessTokenRequest, MessageKind, SyncTemplatesResponse, WechatTemplate,
};
use wxpush_server::rpc::TracedChannel;
use wxpush_server::status::Violation;
use wxpush_server::trace_context::TraceContext;
use wxpush_wechat::WechatClient;

/// Where an app's WeChat templates come from: WeChat itself in production, a
/// fixed list in tests of the diffing.
#[async_trait]
pub trait TemplateSource: Send + Sync + 'static {
    /// The app's templates as WeChat lists them now.
    async fn fetch(
        &self,
        app_id: &str,
        kind: AppKind,
        trace: &TraceContext,
    ) -> Result<Vec<WechatTemplate>, TemplateError>;
}

/// WeChat over HTTP, with a token from the token service (secrets never
/// reach this service; the token is used for one call and never logged).
#[derive(Clone)]
pub struct WechatSource {
    token: TokenServiceClient<TracedChannel>,
    wechat: WechatClient,
}

impl WechatSource {
    /// `token` is a channel to the token service (lazy is fine).
    pub fn new(token: TracedChannel, wechat: WechatClient) -> Self {
        Self {
            token: TokenServiceClient::new(token),
            wechat,
        }
    }
}

#[async_trait]
impl TemplateSource for WechatSource {
    async fn fetch(
        &self,
        app_id: &str,
        kind: AppKind,
        trace: &TraceContext,
    ) -> Result<Vec<WechatTemplate>, TemplateError> {
        let mut request = tonic::Request::new(GetAccessTokenRequest {
            app_id: app_id.to_string(),
        });
        trace.child().inject(request.metadata_mut());
        let token = self
            .token
            .clone()
            .get_access_token(request)
            .await
            .map_err(TemplateError::Token)?
            .into_inner()
            .access_token;
        Ok(match kind {
            AppKind::MiniProgram => self
                .wechat
                .subscribe_templates(&token)
                .await?
                .into_iter()
                .map(|t| parse(t.pri_tmpl_id, t.title, t.content))
                .collect(),
            _ => self
                .wechat
                .private_templates(&token)
                .await?
                .into_iter()
                .map(|t| parse(t.template_id, t.title, t.content))
                .collect(),
        })
    }
}

/// A WeChat template with the field names of its content.
pub fn parse(template_id: String, title: String, content: String) -> WechatTemplate {
    WechatTemplate {
        fields: placeholders(&content),
        template_id,
        title,
        content,
    }
}

/// The app kind to sync as: the one asked for, else the one the registry's
/// templates of that app imply (template messages: official account).
pub async fn resolve_kind(
    registry: &TemplateRegistry,
    app_id: &str,
    asked: AppKind,
) -> Result<AppKind, TemplateError> {
    if asked != AppKind::Unspecified {
        return Ok(asked);
    }
    let templates = registry.list(Some(app_id)).await?;
    match templates.first().map(|t| t.kind) {
        Some(k) if k == MessageKind::Subscribe as i32 => Ok(AppKind::MiniProgram),
        Some(k) if k == MessageKind::Template as i32 => Ok(AppKind::OfficialAccount),
        _ => Err(TemplateError::InvalidArgument(vec![Violation::new(
            "kind",
            format!(
                "is required: the registry has no template of app {app_id} to infer \
                 OFFICIAL_ACCOUNT or MINI_PROGRAM from"
            ),
        )])),
    }
}

/// Pulls the app's WeChat templates, stores them, updates the business
/// templates bound to them, and reports what changed since the last sync
/// (everything is `added` on the first).
pub async fn sync_app(
    registry: &TemplateRegistry,
    source: &dyn TemplateSource,
    app_id: &str,
    kind: AppKind,
    trace: &TraceContext,
) -> Result<SyncTemplatesResponse, TemplateError> {
    let fresh = source.fetch(app_id, kind, trace).await?;
    let before: BTreeMap<String, WechatTemplate> = registry
        .wechat_templates(app_id)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.template_id.clone(), t))
        .collect();
    let now: BTreeMap<String, WechatTemplate> = fresh
        .iter()
        .map(|t| (t.template_id.clone(), t.clone()))
        .collect();

    let mut out = SyncTemplatesResponse::default();
    for (id, t) in &now {
        match before.get(id) {
            None => out.added.push(id.clone()),
            Some(old) if old.content != t.content || old.title != t.title => {
                out.changed.push(id.clone())
            }
            Some(_) => {}
        }
    }
    out.removed = before
        .keys()
        .filter(|id| !now.contains_key(*id))
        .cloned()
        .collect();
    registry.set_wechat_templates(app_id, &fresh).await?;

    for t in registry.list(Some(app_id)).await? {
        let wechat = now.get(&t.template_id);
        if wechat.is_none() {
            out.flagged_keys.push(t.key.clone());
        }
        registry
            .write_with_retry(&t.key, |current| {
                // Deleted or rebound to another app meanwhile: not ours to touch.
                let cur = current.filter(|c| c.app_id == app_id)?;
                let mut next = cur.clone();
                match now.get(&next.template_id) {
                    Some(w) => {
                        next.wechat_content = w.content.clone();
                        next.title = w.title.clone();
                        next.wechat_template_missing = false;
                    }
                    None => next.wechat_template_missing = true,
                }
                (next != *cur).then_some(next)
            })
            .await?;
    }
    tracing::info!(
        app_id,
        templates = now.len(),
        added = out.added.len(),
        changed = out.changed.len(),
        removed = out.removed.len(),
        flagged = out.flagged_keys.len(),
        "templates synced from wechat"
    );
    out.templates = fresh;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use wxpush_proto::v1::Template;

    /// A WeChat whose template list the test changes between syncs.
    struct Fixed(Mutex<Vec<WechatTemplate>>);

    #[async_trait]
    impl TemplateSource for Fixed {
        async fn fetch(
            &self,
            _app_id: &str,
            _kind: AppKind,
            _trace: &TraceContext,
        ) -> Result<Vec<WechatTemplate>, TemplateError> {
            Ok(self.0.lock().unwrap().clone())
        }
    }

    fn wt(id: &str, content: &str) -> WechatTemplate {
        parse(id.into(), format!("title {id}"), content.into())
    }

    fn bound(key: &str, template_id: &str) -> Template {
        Template {
            key: key.into(),
            app_id: "wx1".into(),
            kind: MessageKind::Template as i32,
            template_id: template_id.into(),
            fields: [("keyword1".to_string(), "{{a}}".to_string())].into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn reports_added_changed_removed_and_flags_vanished_bindings() {
        let r = TemplateRegistry::new();
        r.upsert(bound("on_a", "A"), 0).await.unwrap();
        r.upsert(bound("on_b", "B"), 0).await.unwrap();
        let source = Fixed(Mutex::new(vec![
            wt("A", "{{keyword1.DATA}}"),
            wt("B", "{{keyword1.DATA}}"),
        ]));
        let trace = TraceContext::new_root();
        let kind = resolve_kind(&r, "wx1", AppKind::Unspecified).await.unwrap();
        assert_eq!(kind, AppKind::OfficialAccount);

        let first = sync_app(&r, &source, "wx1", kind, &trace).await.unwrap();
        assert_eq!(first.added, ["A", "B"]);
        assert!(first.changed.is_empty() && first.removed.is_empty());
        assert!(first.flagged_keys.is_empty());
        assert_eq!(first.templates[0].fields, ["keyword1"]);
        let on_a = r.get("on_a").await.unwrap();
        assert_eq!(on_a.wechat_content, "{{keyword1.DATA}}");
        assert_eq!(on_a.title, "title A");
        assert_eq!(on_a.version, 2);

        *source.0.lock().unwrap() = vec![
            wt("A", "{{keyword1.DATA}} {{keyword2.DATA}}"),
            wt("C", "{{x.DATA}}"),
        ];
        let second = sync_app(&r, &source, "wx1", kind, &trace).await.unwrap();
        assert_eq!(second.added, ["C"]);
        assert_eq!(second.changed, ["A"]);
        assert_eq!(second.removed, ["B"]);
        assert_eq!(second.flagged_keys, ["on_b"]);
        let on_b = r.get("on_b").await.unwrap();
        assert!(on_b.wechat_template_missing, "flagged, not deleted");
        assert_eq!(
            r.get("on_a").await.unwrap().wechat_content,
            "{{keyword1.DATA}} {{keyword2.DATA}}"
        );

        // Nothing changed at WeChat: nothing reported, nothing rewritten.
        let version = r.get("on_a").await.unwrap().version;
        let third = sync_app(&r, &source, "wx1", kind, &trace).await.unwrap();
        assert!(third.added.is_empty() && third.changed.is_empty() && third.removed.is_empty());
        assert_eq!(third.flagged_keys, ["on_b"]);
        assert_eq!(r.get("on_a").await.unwrap().version, version);
    }

    #[tokio::test]
    async fn kind_cannot_be_inferred_for_an_unknown_app() {
        let r = TemplateRegistry::new();
        let e = resolve_kind(&r, "wx_none", AppKind::Unspecified)
            .await
            .unwrap_err();
        assert!(matches!(e, TemplateError::InvalidArgument(v) if v[0].field == "kind"));
        assert_eq!(
            resolve_kind(&r, "wx_none", AppKind::MiniProgram)
                .await
                .unwrap(),
            AppKind::MiniProgram
        );
    }
}
