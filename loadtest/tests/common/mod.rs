//! Helpers shared by the load tester's integration tests.

/// The text of every `<text>` element of a chart (titles, tick labels,
/// legend entries); panics unless the chart is well-formed SVG.
pub fn chart_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}
