//! The `wxpush.v1.TemplateService` gRPC API over [`TemplateRegistry`].

use crate::error::TemplateError;
use crate::registry::TemplateRegistry;
use crate::render::{RenderInput, render};
use crate::sync::{TemplateSource, WechatSource, resolve_kind, sync_app};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use wxpush_auth::Operation;
use wxpush_proto::v1::template_service_server::{TemplateService, TemplateServiceServer};
use wxpush_proto::v1::*;
use wxpush_server::caller::Caller;
use wxpush_server::paging;
use wxpush_server::rpc::TracedChannel;
use wxpush_server::status::Violation;
use wxpush_server::trace_context::TraceContext;
use wxpush_wechat::WechatClient;

/// The gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct TemplateGrpc {
    registry: TemplateRegistry,
    /// Where SyncTemplates pulls from; `None`: SyncTemplates is not
    /// configured and answers FAILED_PRECONDITION.
    source: Option<Arc<dyn TemplateSource>>,
}

impl TemplateGrpc {
    /// Handlers over `registry`, without SyncTemplates (see [`Self::with_sync`]).
    pub fn new(registry: TemplateRegistry) -> Self {
        Self {
            registry,
            source: None,
        }
    }

    /// Enables SyncTemplates: tokens from the token service at `token`
    /// (a traced channel, lazy is fine), template lists from WeChat via `wechat`.
    pub fn with_sync(self, token: TracedChannel, wechat: WechatClient) -> Self {
        self.with_source(Arc::new(WechatSource::new(token, wechat)))
    }

    /// Enables SyncTemplates from any source (tests use a fixed list).
    pub fn with_source(mut self, source: Arc<dyn TemplateSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> TemplateServiceServer<Self> {
        TemplateServiceServer::new(self)
    }
}

impl TemplateGrpc {
    /// A template as it is rendered: validated against WeChat's template
    /// as last synced when there is one (it is the truth; a business
    /// template may predate the sync).
    async fn render_plan(&self, key: &str) -> Result<Template, TemplateError> {
        let mut template = self.registry.get(key).await?;
        let synced = match self.registry.wechat_templates(&template.app_id).await {
            Ok(synced) => synced,
            // The store cannot answer: render with the content bound to the
            // template when it was written (its last-known copy), as the
            // registry serves templates then.
            Err(TemplateError::Backend(reason)) => {
                tracing::warn!(%reason, key, "synced WeChat templates unreadable; rendering with the template's own copy");
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(synced) = synced
            && let Some(w) = synced
                .iter()
                .find(|w| w.template_id == template.template_id)
        {
            template.wechat_content = w.content.clone();
        }
        Ok(template)
    }
}

/// The template, if the caller may see its app; as unknown as a missing
/// one otherwise (a caller of app A never reads app B's templates).
fn visible(t: Template) -> Result<Template, TemplateError> {
    if Caller::current().sees_app(&t.app_id) {
        Ok(t)
    } else {
        Err(TemplateError::NotFound(t.key))
    }
}

/// `manage_templates` on this app and key, or PERMISSION_DENIED.
fn may_manage(app_id: &str, key: &str) -> Result<(), TemplateError> {
    Caller::current()
        .check(Operation::ManageTemplates, app_id, Some(key))
        .map_err(TemplateError::Denied)
}

fn required_key(key: &str) -> Result<(), TemplateError> {
    if key.trim().is_empty() {
        Err(TemplateError::InvalidArgument(vec![Violation::new(
            "key",
            "is required",
        )]))
    } else {
        Ok(())
    }
}

/// Templates per `ListTemplates` page when the caller names no size.
pub const DEFAULT_PAGE_SIZE: usize = 100;

#[tonic::async_trait]
impl TemplateService for TemplateGrpc {
    async fn upsert_template(
        &self,
        request: Request<UpsertTemplateRequest>,
    ) -> Result<Response<UpsertTemplateResponse>, Status> {
        let req = request.into_inner();
        let template = req.template.ok_or_else(|| {
            TemplateError::InvalidArgument(vec![Violation::new("template", "is required")])
        })?;
        // The caller's app and key, and the app of the template it would
        // replace: no moving another app's template into one's own.
        may_manage(&template.app_id, &template.key)?;
        if !template.key.is_empty()
            && let Ok(current) = self.registry.get(&template.key).await
        {
            may_manage(&current.app_id, &current.key)?;
        }
        let stored = self.registry.upsert(template, req.expected_version).await?;
        Ok(Response::new(UpsertTemplateResponse {
            template: Some(stored),
        }))
    }

    async fn get_template(
        &self,
        request: Request<GetTemplateRequest>,
    ) -> Result<Response<GetTemplateResponse>, Status> {
        let req = request.into_inner();
        required_key(&req.key)?;
        let template = visible(if req.for_render {
            self.render_plan(&req.key).await?
        } else {
            self.registry.get(&req.key).await?
        })?;
        Ok(Response::new(GetTemplateResponse {
            template: Some(template),
        }))
    }

    async fn list_templates(
        &self,
        request: Request<ListTemplatesRequest>,
    ) -> Result<Response<ListTemplatesResponse>, Status> {
        let req = request.into_inner();
        let caller = Caller::current();
        if !req.app_id.is_empty() && !caller.sees_app(&req.app_id) {
            return Err(TemplateError::Denied(wxpush_server::caller::denied(
                caller.name(),
                &format!("list the templates of app {}", req.app_id),
            ))
            .into());
        }
        let filter = (!req.app_id.is_empty()).then_some(req.app_id.as_str());
        let size = paging::page_size(req.page_size, DEFAULT_PAGE_SIZE);
        // The registry is small (configuration): listed whole, paged here.
        let mut all = self.registry.list(filter).await?;
        all.retain(|t| caller.sees_app(&t.app_id));
        let (templates, next_page_token) =
            paging::page(all, |t| t.key.as_str(), size, &req.page_token)
                .map_err(|v| TemplateError::InvalidArgument(vec![v]))?;
        Ok(Response::new(ListTemplatesResponse {
            templates,
            next_page_token,
        }))
    }

    async fn list_template_revisions(
        &self,
        request: Request<ListTemplateRevisionsRequest>,
    ) -> Result<Response<ListTemplateRevisionsResponse>, Status> {
        let req = request.into_inner();
        required_key(&req.key)?;
        let size = paging::page_size(req.page_size, DEFAULT_PAGE_SIZE);
        let bad_token = || {
            TemplateError::InvalidArgument(vec![Violation::new(
                "page_token",
                "is not a token from a previous response of this list",
            )])
        };
        let before = match paging::decode_token(&req.page_token)
            .map_err(|v| TemplateError::InvalidArgument(vec![v]))?
        {
            Some(id) => Some(id.parse::<i64>().map_err(|_| bad_token())?),
            None => None,
        };
        let mut page = self.registry.revisions(&req.key, size, before).await?;
        let caller = Caller::current();
        page.revisions
            .retain(|r| caller.sees_app(&r.template.app_id));
        let next_page_token = match page.revisions.last() {
            Some(last) if page.more => paging::encode_token(&last.id.to_string()),
            _ => String::new(),
        };
        Ok(Response::new(ListTemplateRevisionsResponse {
            revisions: page
                .revisions
                .into_iter()
                .map(|r| TemplateRevision {
                    template: Some(r.template),
                    change: r.change as i32,
                    changed_at: Some(wxpush_proto::timestamp_from_micros(r.changed_at_micros)),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn delete_template(
        &self,
        request: Request<DeleteTemplateRequest>,
    ) -> Result<Response<DeleteTemplateResponse>, Status> {
        let req = request.into_inner();
        required_key(&req.key)?;
        if let Ok(current) = self.registry.get(&req.key).await {
            may_manage(&current.app_id, &current.key)?;
        }
        self.registry.delete(&req.key, req.expected_version).await?;
        Ok(Response::new(DeleteTemplateResponse {}))
    }

    async fn render_template(
        &self,
        request: Request<RenderTemplateRequest>,
    ) -> Result<Response<RenderTemplateResponse>, Status> {
        let req = request.into_inner();
        required_key(&req.key)?;
        let template = visible(self.render_plan(&req.key).await?)?;
        let rendered = render(
            &template,
            &RenderInput {
                variables: &req.variables,
                openid: &req.openid,
                client_msg_id: &req.client_msg_id,
                url: &req.url,
                miniprogram: req.miniprogram.as_ref(),
                page: &req.page,
            },
        )?;
        Ok(Response::new(RenderTemplateResponse {
            body_json: rendered.body_json,
            preview: rendered.preview,
            api_path: rendered.api_path.to_string(),
            app_id: template.app_id,
            template_id: template.template_id,
            kind: template.kind,
            data_json: rendered.data_json,
        }))
    }

    async fn sync_templates(
        &self,
        request: Request<SyncTemplatesRequest>,
    ) -> Result<Response<SyncTemplatesResponse>, Status> {
        let trace = TraceContext::from_metadata_or_new(request.metadata());
        let req = request.into_inner();
        let Some(source) = &self.source else {
            return Err(TemplateError::FailedPrecondition(
                "SyncTemplates is not configured in this process: it needs a token service \
                 endpoint and a WeChat client (TemplateGrpc::with_sync)"
                    .into(),
            )
            .into());
        };
        if req.app_id.trim().is_empty() {
            return Err(TemplateError::InvalidArgument(vec![Violation::new(
                "app_id",
                "is required",
            )])
            .into());
        }
        Caller::current()
            .check(Operation::ManageTemplates, &req.app_id, None)
            .map_err(TemplateError::Denied)?;
        let asked = AppKind::try_from(req.kind).unwrap_or(AppKind::Unspecified);
        let kind = resolve_kind(&self.registry, &req.app_id, asked).await?;
        let out = sync_app(&self.registry, source.as_ref(), &req.app_id, kind, &trace).await?;
        Ok(Response::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sync_without_a_token_client_is_failed_precondition() {
        let grpc = TemplateGrpc::new(TemplateRegistry::new());
        let e = grpc
            .sync_templates(Request::new(SyncTemplatesRequest {
                app_id: "wx1".into(),
                kind: AppKind::OfficialAccount as i32,
            }))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.message().contains("not configured"), "{e:?}");
    }

    #[tokio::test]
    async fn render_validates_against_the_synced_wechat_template() {
        let registry = TemplateRegistry::new();
        let t = Template {
            key: "k".into(),
            app_id: "wx1".into(),
            kind: MessageKind::Subscribe as i32,
            template_id: "S1".into(),
            fields: [("thing1".to_string(), "{{a}}".to_string())].into(),
            ..Default::default()
        };
        registry.upsert(t, 0).await.unwrap();
        // WeChat's template (synced after the business template was written)
        // has a second field: rendering must ask for it.
        registry
            .set_wechat_templates(
                "wx1",
                &[crate::sync::parse(
                    "S1".into(),
                    "t".into(),
                    "{{thing1.DATA}}{{phrase2.DATA}}".into(),
                )],
            )
            .await
            .unwrap();
        let grpc = TemplateGrpc::new(registry);
        let e = grpc
            .render_template(Request::new(RenderTemplateRequest {
                key: "k".into(),
                variables: [("a".to_string(), "ok".to_string())].into(),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        let v = wxpush_server::status::field_violations(&e);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "template.fields.phrase2");
    }
}
