//! The `wxpush.v1.TemplateService` gRPC API over [`TemplateRegistry`].

use crate::error::TemplateError;
use crate::registry::TemplateRegistry;
use crate::render::{RenderInput, render};
use tonic::{Request, Response, Status};
use wxpush_proto::v1::template_service_server::{TemplateService, TemplateServiceServer};
use wxpush_proto::v1::*;
use wxpush_server::status::Violation;

/// The gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct TemplateGrpc {
    registry: TemplateRegistry,
}

impl TemplateGrpc {
    pub fn new(registry: TemplateRegistry) -> Self {
        Self { registry }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> TemplateServiceServer<Self> {
        TemplateServiceServer::new(self)
    }
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

#[tonic::async_trait]
impl TemplateService for TemplateGrpc {
    async fn upsert_template(
        &self,
        request: Request<UpsertTemplateRequest>,
    ) -> Result<Response<Template>, Status> {
        let req = request.into_inner();
        let template = req.template.ok_or_else(|| {
            TemplateError::InvalidArgument(vec![Violation::new("template", "is required")])
        })?;
        Ok(Response::new(
            self.registry.upsert(template, req.expected_version).await?,
        ))
    }

    async fn get_template(
        &self,
        request: Request<GetTemplateRequest>,
    ) -> Result<Response<Template>, Status> {
        let key = request.into_inner().key;
        required_key(&key)?;
        Ok(Response::new(self.registry.get(&key).await?))
    }

    async fn list_templates(
        &self,
        request: Request<ListTemplatesRequest>,
    ) -> Result<Response<ListTemplatesResponse>, Status> {
        let app_id = request.into_inner().app_id;
        let filter = (!app_id.is_empty()).then_some(app_id.as_str());
        Ok(Response::new(ListTemplatesResponse {
            templates: self.registry.list(filter).await,
        }))
    }

    async fn delete_template(
        &self,
        request: Request<DeleteTemplateRequest>,
    ) -> Result<Response<DeleteTemplateResponse>, Status> {
        let req = request.into_inner();
        required_key(&req.key)?;
        self.registry.delete(&req.key, req.expected_version).await?;
        Ok(Response::new(DeleteTemplateResponse {}))
    }

    async fn render_template(
        &self,
        request: Request<RenderTemplateRequest>,
    ) -> Result<Response<RenderTemplateResponse>, Status> {
        let req = request.into_inner();
        required_key(&req.key)?;
        let template = self.registry.get(&req.key).await?;
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
        _request: Request<SyncTemplatesRequest>,
    ) -> Result<Response<SyncTemplatesResponse>, Status> {
        Err(TemplateError::Unimplemented("SyncTemplates (pulling templates from WeChat)").into())
    }
}
