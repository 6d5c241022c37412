use super::*;

#[test]
fn a_template_receipt_reads_from_xml_with_either_spacing() {
    for (status, outcome) in [
        ("success", ReceiptOutcome::Delivered),
        ("failed:user block", ReceiptOutcome::Blocked),
        ("failed: user block", ReceiptOutcome::Blocked),
        ("failed: system failed", ReceiptOutcome::Undelivered),
        ("failed:system failed", ReceiptOutcome::Undelivered),
    ] {
        let xml = format!(
            "<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>\
             <FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>\
             <CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType>\
             <Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID>\
             <Status><![CDATA[{status}]]></Status></xml>"
        );
        let push = Push::parse(xml.as_bytes()).unwrap();
        assert_eq!(push.account, "gh_7f083739789a");
        assert_eq!(push.openid, "oia2TjuEGTNoeX76QEjQNrcURxG8");
        assert_eq!(push.create_time, 1_395_658_920);
        assert_eq!(
            push.event,
            PushEvent::TemplateReceipt {
                msg_id: "200163836".into(),
                outcome
            },
            "{status}"
        );
    }
}

#[test]
fn subscription_events_read_from_xml_and_json_alike() {
    let xml = "<xml><ToUserName>gh_mp</ToUserName><FromUserName>o_user</FromUserName>\
        <CreateTime>1620973045</CreateTime><MsgType>event</MsgType>\
        <Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent>\
        <List><TemplateId>T1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>0</PopupScene></List>\
        <List><TemplateId>T2</TemplateId><SubscribeStatusString>reject</SubscribeStatusString><PopupScene>0</PopupScene></List>\
        </SubscribeMsgPopupEvent></xml>";
    let json = r#"{"ToUserName":"gh_mp","FromUserName":"o_user","CreateTime":1620973045,
        "MsgType":"event","Event":"subscribe_msg_popup_event","SubscribeMsgPopupEvent":{"List":[
        {"TemplateId":"T1","SubscribeStatusString":"accept","PopupScene":"0"},
        {"TemplateId":"T2","SubscribeStatusString":"reject","PopupScene":"0"}]}}"#;
    let from_xml = Push::parse(xml.as_bytes()).unwrap();
    assert_eq!(from_xml, Push::parse(json.as_bytes()).unwrap());
    let PushEvent::SubscribePopup { items } = from_xml.event else {
        panic!("{from_xml:?}");
    };
    let answers: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i.template_id.as_str(), i.status.as_str()))
        .collect();
    assert_eq!(answers, [("T1", "accept"), ("T2", "reject")]);

    let sent = r#"{"ToUserName":"gh_mp","FromUserName":"o_user","CreateTime":1,"MsgType":"event",
        "Event":"subscribe_msg_sent_event","SubscribeMsgSentEvent":{"List":
        {"TemplateId":"T1","MsgID":"1700","ErrorCode":"0","ErrorStatus":"success"}}}"#;
    let PushEvent::SubscribeSent { items } = Push::parse(sent.as_bytes()).unwrap().event else {
        panic!("a sent event");
    };
    assert_eq!(
        (
            items[0].msg_id.as_str(),
            items[0].error_code,
            items[0].status.as_str()
        ),
        ("1700", 0, "success")
    );
}

#[test]
fn other_pushes_are_named_and_broken_ones_refused() {
    let text = "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName>\
        <CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content></xml>";
    assert_eq!(
        Push::parse(text.as_bytes()).unwrap().event,
        PushEvent::Other {
            msg_type: "text".into(),
            event: String::new()
        }
    );
    assert_eq!(Push::parse(b"<xml><unclosed>"), Err(PushError::Unreadable));
    assert_eq!(Push::parse(b"{\"a\":"), Err(PushError::Unreadable));
    assert_eq!(Push::parse(&[0xff, 0xfe]), Err(PushError::Unreadable));
    assert_eq!(
        Push::parse(b"<xml><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event></xml>"),
        Err(PushError::Missing("MsgID"))
    );
    assert_eq!(
        Push::encrypted(
            b"<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[abc=]]></Encrypt></xml>"
        ),
        Ok("abc=".into())
    );
    assert_eq!(
        Push::encrypted(br#"{"ToUserName":"gh","Encrypt":"abc="}"#),
        Ok("abc=".into())
    );
    assert_eq!(
        Push::encrypted(b"<xml></xml>"),
        Err(PushError::Missing("Encrypt"))
    );
}
