//! The host side of `covet:plugin@0.1.0` (`plugin-api/wit/`): bindings
//! generated from the WIT, and the `request` / `outgoing-response`
//! resources implemented over the [`Exchange`] and [`HostResponse`] the
//! pipeline lent to the store for the current call.
//!
//! Edits go through the same `RequestOps` / `ResponseOps` code the native
//! binding uses, so a WASM plugin can no more put an invalid header on the
//! wire than a native one.

use abi_stable::std_types::{RResult, RStr, RString};
use covet_plugin_api::{
    HttpVersion as ApiVersion,
    ffi::{RequestOps, ResponseOps},
};
use wasmtime::component::Resource;

use super::sandbox::Ctx;
use crate::exchange::{Exchange, HostResponse};

wasmtime::component::bindgen!({
    world: "covet:plugin/plugin",
    path: "../plugin-api/wit",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "covet:plugin/types.request": RequestHandle,
        "covet:plugin/types.outgoing-response": ResponseHandle,
    },
});

pub use self::covet::plugin::types::{Flow, HttpVersion, Phases, Response};

/// The guest's handle on the request of the current call.
pub struct RequestHandle;

/// The guest's handle on the outgoing response of the current `on-response` call.
pub struct ResponseHandle;

impl Ctx {
    fn request(&mut self) -> wasmtime::Result<&mut Exchange> {
        self.exchange.as_mut().ok_or_else(|| wasmtime::format_err!("the request is only valid during its call"))
    }

    fn outgoing(&mut self) -> wasmtime::Result<&mut HostResponse> {
        self.response.as_mut().ok_or_else(|| wasmtime::format_err!("the response is only valid during on-response"))
    }
}

fn text(value: RStr<'_>) -> String {
    value.as_str().to_owned()
}

fn opt(value: abi_stable::std_types::ROption<RStr<'_>>) -> Option<String> {
    value.into_option().map(text)
}

fn edit(result: RResult<(), RString>) -> Result<(), String> {
    result.into_result().map_err(RString::into_string)
}

fn pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    let utf8 = headers.iter().filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())));
    utf8.collect()
}

impl self::covet::plugin::types::Host for Ctx {}

impl self::covet::plugin::types::HostRequest for Ctx {
    fn method(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(self.request()?.method.as_str().to_owned())
    }
    fn uri(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(text(RequestOps::uri(self.request()?)))
    }
    fn path(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(self.request()?.uri.path().to_owned())
    }
    fn query(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<Option<String>> {
        Ok(self.request()?.uri.query().map(str::to_owned))
    }
    fn version(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<HttpVersion> {
        Ok(match RequestOps::version(self.request()?) {
            ApiVersion::Http10 => HttpVersion::Http10,
            ApiVersion::Http11 => HttpVersion::Http11,
            ApiVersion::Http2 => HttpVersion::Http2,
            ApiVersion::Http3 => HttpVersion::Http3,
        })
    }
    fn header(&mut self, _: Resource<RequestHandle>, name: String) -> wasmtime::Result<Option<String>> {
        Ok(opt(RequestOps::header(self.request()?, name.as_str().into())))
    }
    fn headers(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(pairs(&self.request()?.headers))
    }
    fn set_header(&mut self, _: Resource<RequestHandle>, name: String, value: String) -> wasmtime::Result<Result<(), String>> {
        Ok(edit(RequestOps::set_header(self.request()?, name.as_str().into(), value.as_str().into())))
    }
    fn append_header(&mut self, _: Resource<RequestHandle>, name: String, value: String) -> wasmtime::Result<Result<(), String>> {
        Ok(edit(RequestOps::append_header(self.request()?, name.as_str().into(), value.as_str().into())))
    }
    fn remove_header(&mut self, _: Resource<RequestHandle>, name: String) -> wasmtime::Result<()> {
        RequestOps::remove_header(self.request()?, name.as_str().into());
        Ok(())
    }
    fn client_addr(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(self.request()?.client.to_string())
    }
    fn param(&mut self, _: Resource<RequestHandle>, name: String) -> wasmtime::Result<Option<String>> {
        Ok(opt(RequestOps::param(self.request()?, name.as_str().into())))
    }
    fn route(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(self.request()?.route.to_string())
    }
    fn body(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.request()?.body.to_vec())
    }
    fn metadata(&mut self, _: Resource<RequestHandle>, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.request()?.metadata_value(&key).map(str::to_owned))
    }
    fn set_metadata(&mut self, _: Resource<RequestHandle>, key: String, value: String) -> wasmtime::Result<()> {
        self.request()?.metadata.set(&key, &value);
        Ok(())
    }
    fn request_id(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(self.request()?.id().to_owned())
    }
    fn drop(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl self::covet::plugin::types::HostOutgoingResponse for Ctx {
    fn status(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<u16> {
        Ok(self.outgoing()?.status.as_u16())
    }
    fn set_status(&mut self, _: Resource<ResponseHandle>, status: u16) -> wasmtime::Result<Result<(), String>> {
        Ok(edit(ResponseOps::set_status(self.outgoing()?, status)))
    }
    fn header(&mut self, _: Resource<ResponseHandle>, name: String) -> wasmtime::Result<Option<String>> {
        Ok(opt(ResponseOps::header(self.outgoing()?, name.as_str().into())))
    }
    fn headers(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(pairs(&self.outgoing()?.headers))
    }
    fn set_header(&mut self, _: Resource<ResponseHandle>, name: String, value: String) -> wasmtime::Result<Result<(), String>> {
        Ok(edit(ResponseOps::set_header(self.outgoing()?, name.as_str().into(), value.as_str().into())))
    }
    fn append_header(&mut self, _: Resource<ResponseHandle>, name: String, value: String) -> wasmtime::Result<Result<(), String>> {
        Ok(edit(ResponseOps::append_header(self.outgoing()?, name.as_str().into(), value.as_str().into())))
    }
    fn remove_header(&mut self, _: Resource<ResponseHandle>, name: String) -> wasmtime::Result<()> {
        ResponseOps::remove_header(self.outgoing()?, name.as_str().into());
        Ok(())
    }
    fn body(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.outgoing()?.body.to_vec())
    }
    fn set_body(&mut self, _: Resource<ResponseHandle>, body: Vec<u8>) -> wasmtime::Result<()> {
        ResponseOps::set_body(self.outgoing()?, body.into());
        Ok(())
    }
    fn drop(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl Response {
    /// Converts a guest's response, refusing invalid status codes and headers.
    pub fn into_host(self) -> Result<HostResponse, String> {
        let mut resp = covet_plugin_api::Response::new(self.status).with_body(self.body);
        for (name, value) in self.headers {
            resp = resp.with_header(name, value);
        }
        HostResponse::from_plugin(resp)
    }
}

impl Phases {
    /// The same set in the native API's terms.
    pub fn to_api(self) -> covet_plugin_api::Phases {
        use covet_plugin_api::Phases as P;
        [(Phases::ON_REQUEST, P::ON_REQUEST), (Phases::HANDLE, P::HANDLE), (Phases::ON_RESPONSE, P::ON_RESPONSE)]
            .into_iter()
            .filter(|(wit, _)| self.contains(*wit))
            .fold(P::NONE, |all, (_, api)| all | api)
    }
}
