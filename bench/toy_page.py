"""The toy page the console's pages are measured against (bench.first_paint): a title and one metric,
the least a Streamlit page can show, served by ``streamlit run`` like the console."""

import streamlit as st

st.title("Toy page")
st.metric("Coverage", "99.1%")
