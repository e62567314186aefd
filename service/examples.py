"""A whole note as the API's example: what a hospital app sends (sections, line breaks, a few
hundred words). Used by the OpenAPI examples, ``bedside demo`` and the tests of both; fictional."""

from __future__ import annotations

NOTE = """ADMISSION NOTE

Chief complaint: chest pain and shortness of breath for two days.

History of present illness:
68-year-old man with a history of heart failure, type 2 diabetes and chronic kidney disease,
admitted from the emergency department with chest pain radiating to the left arm. He reports
worsening shortness of breath on exertion and swelling of both legs. He denies fever or cough.
In the emergency department the troponin was elevated and the ECG showed ST depression in the
lateral leads. He was given aspirin and started on a heparin drip.

Past medical history:
- Heart failure with reduced ejection fraction
- Type 2 diabetes on metformin
- Chronic kidney disease, stage 3
- Hypertension on metoprolol

Medications on admission: metformin, metoprolol, lisinopril, furosemide.
Allergies: penicillin (rash).

Social history:
Retired bus driver, lives with his wife. Former smoker, 30 pack-years, quit ten years ago.
Drinks alcohol rarely. Independent in daily activities until this week.

Family history:
Father died of a myocardial infarction at 62. Mother had type 2 diabetes and a stroke.

Review of systems:
Positive for orthopnea, paroxysmal nocturnal dyspnea and fatigue. Negative for syncope,
palpitations, abdominal pain, melena or hematuria. No recent weight loss.

Examination:
Blood pressure 148/92, heart rate 104, oxygen saturation 91 % on room air.
Crackles at both lung bases; pitting edema of both ankles.

Investigations:
Chest x-ray showed pulmonary edema and a small right pleural effusion.
Creatinine 1.9, up from a baseline of 1.4. Potassium 5.1.
Echocardiogram ordered.

Assessment and plan:
1. Non-ST elevation myocardial infarction: continue heparin and aspirin, start atorvastatin;
   cardiology consulted for coronary angiography.
2. Acute on chronic heart failure: IV furosemide, fluid restriction, daily weights.
3. Acute kidney injury: hold metformin and lisinopril, repeat creatinine in the morning.
4. Hyperkalemia: low potassium diet, repeat potassium tonight.

Hospital course so far:
Overnight he had one episode of chest pain relieved by sublingual nitroglycerin. A repeat
troponin was higher than on arrival. Blood glucose ranged from 180 to 240 on insulin sliding
scale. Urine output improved after the second dose of furosemide, and his breathing was easier
by the morning; oxygen was weaned to two litres by nasal cannula.

Disposition: admitted to the cardiac care unit. Family updated at the bedside; code status
full code after a discussion of goals of care with the patient and his wife.
"""

HEAD, TAIL = "furosemide", "Acute on chronic heart failure"


def relation_item() -> dict:
    """A relation request on the whole note: IV furosemide for the heart failure of item 2."""
    tail = NOTE.index(TAIL)
    head = NOTE.index(HEAD, tail)
    return {
        "text": NOTE,
        "head": {"start": head, "end": head + len(HEAD)},
        "tail": {"start": tail, "end": tail + len(TAIL)},
    }


def predict_examples() -> dict:
    """OpenAPI ``examples`` of /predict: a whole note for each task kind."""
    return {
        "mortality": {"summary": "risk from a whole note", "value": {"task": "mortality", "texts": [NOTE]}},
        "ner": {"summary": "entities of a whole note", "value": {"task": "ner", "texts": [NOTE]}},
        "relations": {
            "summary": "one pair in a whole note (offsets in code points)",
            "value": {"task": "relations", "items": [relation_item()]},
        },
    }


def extract_examples() -> dict:
    return {"note": {"summary": "entities and relations of a whole note", "value": {"text": NOTE}}}
